"""Builders shared by the SLM tests (the folder tests/ is on the path, see conftest)."""

from __future__ import annotations

from typing import Any

from slcolm_dspy.slm.config import TrainConfig


def tiny_marker_config(**overrides: Any) -> TrainConfig:
    """Two e5 layers with the marker relation stage in the top one and label vectors, set to
    overfit a handful of sentences in seconds on one thread."""
    settings: dict[str, Any] = {
        "encoder": "e5",
        "encoder_layers": 2,
        "relation_stage": "markers",
        "marker_layers": 1,
        "label_vectors": True,
        "epochs": 40,
        "lr_encoder": 5e-4,
        "lr_heads": 5e-3,
        "neg_spans": 20,
        "dropout": 0.0,
        "threads": 1,
        "per_type_thresholds": False,
        "max_minutes": 5,
    }
    return TrainConfig(**(settings | overrides))
