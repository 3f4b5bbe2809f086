"""Shared fixtures. The corpus is never committed: tests read the workplace copy beside the repo
(../shared/data/chisre) or $SLCOLM_TEST_DATA. Without it, data tests skip locally and fail in CI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Importing slcolm_dspy first sets the offline switches (LiteLLM cost map, model hubs).
from slcolm_dspy.core.schema import Schema, load_schema

REPO = Path(__file__).resolve().parents[1]
# Test helpers shared by the per-package folders (wire_server) live at the top of tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _corpus_dir() -> Path:
    env = os.environ.get("SLCOLM_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "chisre"


@pytest.fixture(scope="session")
def schema() -> Schema:
    return load_schema("chisre")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = _corpus_dir()
    if not (path / "train.json").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"corpus not found at {path}; CI must run with shared/ beside the checkout")
        pytest.skip(f"corpus not found at {path}")
    return path


@pytest.fixture(scope="session")
def replay_dir(corpus_dir: Path) -> Path:
    path = corpus_dir / "replay"
    if not (path / "expected.json").is_file():
        pytest.fail(f"replay pack missing at {path}")
    return path


@pytest.fixture(scope="session")
def replay_pack(replay_dir: Path, schema: Schema):
    from slcolm_dspy.data.replay_pack import ReplayPack

    return ReplayPack.load(replay_dir, schema)


@pytest.fixture(scope="session")
def handful(schema, corpus_dir):
    """Six short dev sentences that carry relations: small enough for a tiny model to fit."""
    from slcolm_dspy.data.corpus import load_split

    dev, _ = load_split(corpus_dir, "dev", schema)
    return [r for r in dev if len(r.text) <= 24 and len(r.relations) >= 2][:6]


@pytest.fixture(scope="session")
def tiny_slm(handful, schema, tmp_path_factory):
    """A scratch-encoder SLM overfitted on `handful` (seconds on one thread)."""
    from slcolm_dspy.slm.train import TrainConfig, train

    out = tmp_path_factory.mktemp("slm")
    config = TrainConfig(
        encoder="scratch",
        epochs=70,
        batch_size=2,
        lr_encoder=5e-3,
        lr_heads=5e-3,
        warmup=0.05,
        # few negatives: the model then also proposes entities in unseen sentences, which the
        # guide tests need (pairs to route)
        neg_spans=20,
        neg_pairs=0,
        dropout=0.0,
        patience=70,
        threads=1,
        max_minutes=3,
    )
    summary = train(handful, handful, schema, out, config)
    return out, summary


@pytest.fixture(autouse=True)
def fresh_dspy():
    """No DSPy state crosses tests: no configured LM or adapter, and a fresh in-memory cache with
    no disk cache (an answer cached by one test must not answer another's request)."""
    import dspy

    dspy.configure(lm=None, adapter=None)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    yield
    dspy.configure(lm=None, adapter=None)
