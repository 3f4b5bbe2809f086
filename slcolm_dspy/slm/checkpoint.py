"""An SLM is saved as a directory: config.json, vocab.json, model.safetensors, training_summary.json.
Loading rebuilds the architecture from config.json and reads tensors only: nothing is unpickled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.data.io import sha256_of
from slcolm_dspy.slm.batching import Labels
from slcolm_dspy.slm.encoders import encoder_from_config
from slcolm_dspy.slm.model import SpanRelationModel
from slcolm_dspy.slm.units import UnitVocab

FORMAT = "slcolm-slm/2"  # /2: units (characters or words), span rules, windows
CONFIG, VOCAB, WEIGHTS, SUMMARY = "config.json", "vocab.json", "model.safetensors", "training_summary.json"
# sha256 of the weights and the vocabulary, written with them: a flipped byte in a float loads
# without complaint and changes every prediction, so it is caught here (SLMs saved before the
# manifest load unchecked)
CHECKSUMS = "checksums.json"


def model_config(model: SpanRelationModel, labels: Labels, settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` carries the span rules, the unit kind and the reading form."""
    return {
        "format": FORMAT,
        "entity_types": list(labels.entity_types),
        "relation_types": list(labels.relation_types),
        "max_span": model.max_span,
        "width_dim": model.width.embedding_dim,
        "relation_stage": model.relation_stage,
        "label_dim": model.label_dim,
        "marker_layers": model.markers.layers if model.relation_stage == "markers" else 0,
        "encoder": model.encoder.config_dict(),
        **settings,
    }


def save(directory: Path, model: SpanRelationModel, vocab: UnitVocab, config: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(directory / WEIGHTS)  # a crash mid-write leaves the previous weights intact
    (directory / VOCAB).write_text(json.dumps(vocab.to_json(), ensure_ascii=False), encoding="utf-8")
    (directory / CONFIG).write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    sums = {name: sha256_of(directory / name) for name in (WEIGHTS, VOCAB)}
    (directory / CHECKSUMS).write_text(json.dumps(sums, indent=1), encoding="utf-8")


def verify_checksums(directory: Path) -> None:
    """Each file the manifest names still has the sha256 written with it."""
    if not (directory / CHECKSUMS).is_file():
        return
    sums = _read_json(directory / CHECKSUMS)
    if not isinstance(sums, dict):
        raise SlcolmError(f"{directory / CHECKSUMS}: expected an object of file -> sha256")
    for name, expected in sums.items():
        path = directory / str(name)
        if not path.is_file():
            raise SlcolmError(f"{directory} is not a whole SLM: {name} missing ({CHECKSUMS} lists it)")
        if sha256_of(path) != expected:
            raise SlcolmError(
                f"{path}: damaged (its sha256 differs from the one saved with it in {CHECKSUMS}); "
                "copy it again or retrain"
            )


def recorded_train_counts(directory: Path) -> dict[str, int] | None:
    """Train relations per type as the SLM recorded them at training time (None for an SLM
    trained before they were kept, or a folder without a readable config)."""
    try:
        counts = json.loads((directory / CONFIG).read_text(encoding="utf-8")).get("train_counts")
    except (OSError, ValueError, AttributeError):
        return None
    return {str(t): int(n) for t, n in counts.items()} if isinstance(counts, dict) else None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise SlcolmError(f"{path.parent} is not a saved SLM: {path.name} missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SlcolmError(f"{path}: unreadable ({exc})") from None


def load(directory: Path) -> tuple[SpanRelationModel, UnitVocab, Labels, dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not directory.is_dir():
        raise SlcolmError(f"no SLM at {directory}: not a directory")
    config = _read_json(directory / CONFIG)
    if config.get("format") == "slcolm-slm/1":
        raise SlcolmError(
            f"{directory}: an SLM of an older format (slcolm-slm/1); retrain it with `slcolm slm train`"
        )
    if config.get("format") != FORMAT:
        raise SlcolmError(f"{directory / CONFIG}: not an SLM config (format {config.get('format')!r})")
    try:
        vocab = UnitVocab.from_json(_read_json(directory / VOCAB))
        rows = config["encoder"]["config"]["vocab_size"]
        labels = Labels(tuple(config["entity_types"]), tuple(config["relation_types"]))
        model = SpanRelationModel(
            encoder_from_config(config["encoder"]),
            len(labels.entity_types),
            len(labels.relation_types),
            config["max_span"],
            width_dim=config["width_dim"],
            # models saved before the marker stage and label vectors: SpERT's pair head
            relation_stage=config.get("relation_stage", "spans"),
            label_dim=int(config.get("label_dim", 0)),
            marker_layers=int(config.get("marker_layers", 0)),
        )
    except KeyError as exc:
        raise SlcolmError(f"{directory / CONFIG}: missing field {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise SlcolmError(f"{directory}: malformed SLM config or vocabulary ({exc})") from None
    if rows != len(vocab):
        raise SlcolmError(f"{directory}: vocabulary has {len(vocab)} entries but the encoder has {rows} rows")
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise SlcolmError(f"{directory} is not a saved SLM: {WEIGHTS} missing")
    verify_checksums(directory)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SlcolmError(f"{weights}: corrupt weights file ({exc})") from None
    broken = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all()))
    if broken:
        raise SlcolmError(
            f"{weights}: non-finite values (NaN or infinity) in {len(broken)} tensors, e.g. {broken[0]}"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise SlcolmError(
            f"{weights}: weights do not fit the saved config "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors)"
        )
    return model.eval(), vocab, labels, config
