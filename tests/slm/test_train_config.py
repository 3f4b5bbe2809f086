"""Training settings resolve in one order: TrainConfig's defaults, then the schema's [slm] table
(a corpus's settings chosen on its dev), then what the user gave; a bad [slm] entry is a
one-line error naming the schema file."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.slm.config import TrainConfig, train_config

SIGNATURES = Path(__file__).resolve().parents[2] / "signatures"
CONLL04 = Path(__file__).resolve().parents[3] / "shared" / "data" / "conll04"


def schema_with(tmp_path: Path, name: str, slm_table: str) -> Path:
    """A copy of a shipped schema (with its companion files) and an [slm] table of our own in
    place of any it has."""
    for companion in SIGNATURES.glob(f"{name}_*.toml"):
        (tmp_path / companion.name).write_bytes(companion.read_bytes())
    text = (SIGNATURES / f"{name}.toml").read_text(encoding="utf-8")
    text = text.split("\n[slm]\n")[0]
    path = tmp_path / f"{name}-slm.toml"
    path.write_text(f"{text}\n[slm]\n{slm_table}\n", encoding="utf-8")
    return path


def test_the_schema_fills_what_the_user_did_not_give(tmp_path):
    schema = load_schema(str(schema_with(tmp_path, "chisre", "epochs = 3\nencoder_layers = 2\nlr_heads = 1")))
    config = train_config(schema, {})
    assert (config.epochs, config.encoder_layers, config.lr_heads) == (3, 2, 1)
    assert config.batch_size == TrainConfig().batch_size  # not in the table: the default
    assert config.text_form == "simplified"  # the corpus's variant form, as before
    given = train_config(schema, {"epochs": 5, "text_form": None, "not_a_setting": 1})
    assert (given.epochs, given.encoder_layers, given.text_form) == (5, 2, None)


def test_the_schema_layer_count_is_not_forced_on_the_scratch_encoder(tmp_path):
    schema = load_schema(str(schema_with(tmp_path, "chisre", "epochs = 3\nencoder_layers = 2")))
    config = train_config(schema, {"encoder": "scratch"})
    assert (config.encoder, config.encoder_layers, config.epochs) == ("scratch", None, 3)
    assert train_config(schema, {"encoder": "scratch", "encoder_layers": 2}).encoder_layers == 2


def test_without_an_slm_table_the_defaults_hold(tmp_path):
    schema = load_schema(str(schema_with(tmp_path, "conll04", "")))
    assert train_config(schema, {}) == TrainConfig()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("epoch = 8", r"\[slm\] epoch: not a training setting$"),
        ('epochs = "eight"', r"\[slm\] epochs = 'eight': expected int$"),
        ("per_type_thresholds = 1", r"\[slm\] per_type_thresholds = 1: expected bool$"),
        ("epochs = true", r"\[slm\] epochs = True: expected int$"),
    ],
)
def test_a_bad_slm_table_names_the_schema_file(tmp_path, table, message):
    path = schema_with(tmp_path, "chisre", table)
    with pytest.raises(SlcolmError, match=f"^{path}: {message}"):
        train_config(load_schema(str(path)), {})


def test_cli_training_takes_the_schema_schedule_unless_epochs_is_given(tmp_path):
    conll04_dir = CONLL04
    data = tmp_path / "conll04"
    data.mkdir()
    for name, keep in (("train", 12), ("dev", 4), ("test", 4)):
        records = json.loads((conll04_dir / f"conll04_{name}.json").read_text(encoding="utf-8"))
        (data / f"conll04_{name}.json").write_text(json.dumps(records[:keep]), encoding="utf-8")
    schema = schema_with(tmp_path, "conll04", "epochs = 1\nbatch_size = 4")
    runner = CliRunner()
    base = ["slm", "train", "--schema", str(schema), "--data", str(data), "--encoder", "scratch"]
    for extra, epochs in (([], 1), (["--epochs", "2"], 2)):
        out = tmp_path / f"slm-{epochs}"
        result = runner.invoke(app, [*base, "--out", str(out), "--threads", "1", *extra])
        assert result.exit_code == 0, result.output
        summary = json.loads((out / "training_summary.json").read_text(encoding="utf-8"))
        assert len(summary["history"]) == epochs and summary["config"]["epochs"] == epochs
        assert summary["config"]["batch_size"] == 4 and summary["config"]["threads"] == 1
    bad = schema_with(tmp_path, "conll04", "epochs = 0.5")
    result = runner.invoke(app, [*base[:3], str(bad), *base[4:], "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "[slm] epochs = 0.5: expected int" in result.stderr
    assert "Traceback" not in result.output + result.stderr
