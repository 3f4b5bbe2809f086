import json

from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.writers import write_jsonl

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "evaluate", "replay"):
        assert command in result.output


def test_stats_marks_head_and_tail(corpus_dir, tmp_path):
    out = tmp_path / "stats.json"
    result = runner.invoke(app, ["data", "stats", "--data", str(corpus_dir), "--json", str(out)])
    assert result.exit_code == 0, result.output
    stats = json.loads(out.read_text(encoding="utf-8"))
    assert stats["splits"]["test"]["sentences"] == 379
    rows = {r["type"]: r for r in stats["relations"]}
    assert rows["任职"] == {"type": "任职", "group": "head", "train": 2326, "dev": 297, "test": 339}
    assert rows["死于地点"]["group"] == "tail"
    assert "1 empty record dropped" in result.output


def test_data_dir_from_environment(corpus_dir, monkeypatch):
    monkeypatch.setenv("SLCOLM_DATA", str(corpus_dir))
    assert runner.invoke(app, ["data", "stats"]).exit_code == 0
    monkeypatch.setenv("SLCOLM_DATA", "/nonexistent")
    result = runner.invoke(app, ["data", "stats"])
    assert result.exit_code == 2 and "slcolm data fetch" in result.stderr


def test_evaluate_both_protocols(corpus_dir, schema, tmp_path):
    gold, _ = load_split(corpus_dir, "test", schema)
    # a prediction that drops every relation of the first 100 sentences
    pred = [g.with_predictions(g.entities, () if i < 100 else g.relations) for i, g in enumerate(gold)]
    pred_file = tmp_path / "pred.jsonl"
    write_jsonl(pred, pred_file)
    for protocol in ("paper", "strict"):
        out = tmp_path / f"{protocol}.json"
        gold_file = str(corpus_dir / "test.json")
        args = ["evaluate", "--pred", str(pred_file), "--gold", gold_file, "--protocol", protocol]
        result = runner.invoke(app, [*args, "--json", str(out), "--per-type"])
        assert result.exit_code == 0, result.output
        metrics = json.loads(out.read_text(encoding="utf-8"))
        assert metrics["micro_p"] == 1.0 and 0.5 < metrics["micro_r"] < 1.0
        assert metrics["ner_f1"] == 1.0
        assert "per type" in result.output


def test_evaluate_rejects_unknown_protocol(corpus_dir):
    test = str(corpus_dir / "test.json")
    result = runner.invoke(app, ["evaluate", "--pred", test, "--gold", test, "--protocol", "fuzzy"])
    assert result.exit_code == 2 and "--protocol must be paper or strict" in result.stderr


def test_evaluate_replay_files_with_entity_filter(replay_dir, tmp_path):
    out = tmp_path / "slm.json"
    slm = str(replay_dir / "slm_spert_test.jsonl")
    gold = str(replay_dir / "test401_gold.jsonl")
    args = ["evaluate", "--pred", slm, "--gold", gold, "--entity-filter", slm]
    result = runner.invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text(encoding="utf-8"))
    assert round(100 * metrics["micro_f1"], 2) == 65.36 and round(100 * metrics["macro_f1"], 2) == 43.70


def test_replay_command(corpus_dir, tmp_path):
    out = tmp_path / "replay.json"
    result = runner.invoke(app, ["replay", "--data", str(corpus_dir), "--json", str(out)])
    assert result.exit_code == 0, result.output  # the command fails when a recorded run does not reproduce
    report = json.loads(out.read_text(encoding="utf-8"))
    assert {name: round(100 * r["result"]["macro_f1"], 2) for name, r in report["recorded"].items()} == {
        "deepseek_icl_slcolm": 50.96,
        "deepseek_icl": 40.14,
        "gpt35_k4": 45.12,
        "ernie_k4": 50.10,
    }
    assert "dev_lowest_k" in report["w_lists"] and "authors K12 (test-chosen)" in report["w_lists"]
    assert any(label.startswith("clean mode 3") for label in report["modes"])


def test_replay_missing_pack(tmp_path):
    result = runner.invoke(app, ["replay", "--pack", str(tmp_path)])
    assert result.exit_code == 2 and "no replay pack" in result.stderr


def test_convert_spert_to_jsonl(corpus_dir, tmp_path):
    out = tmp_path / "dev.jsonl"
    result = runner.invoke(
        app, ["data", "convert", str(corpus_dir / "chisre_train_dev.json"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 410 records" in result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 410
