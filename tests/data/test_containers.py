"""Containers told apart by content and split files chosen by split names: a JSON array of
generic records is not SpERT, a `stats.json` beside `train.json` is not a split, two candidates
for one split are a one-line error, and a user's own corpus is never told to `data fetch`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.readers import detect_format, read_records
from slcolm_dspy.data.writers import write_jsonl

runner = CliRunner()


def _as_array(records, path):
    path.write_text(json.dumps([r.to_json() for r in records], ensure_ascii=False), encoding="utf-8")
    return path


def test_a_json_array_of_generic_records_reads_like_its_jsonl(tmp_path, schema, corpus_dir):
    dev, _ = load_split(corpus_dir, "dev", schema)
    path = _as_array(dev[:50], tmp_path / "dev.json")
    assert detect_format(path) == "json-list"
    again, report = read_records(path, schema)
    assert again == dev[:50] and not report.skipped


def test_split_files_are_chosen_by_their_names_not_by_length(tmp_path, schema, corpus_dir):
    train, _ = load_split(corpus_dir, "train", schema)
    dev, _ = load_split(corpus_dir, "dev", schema)
    folder = tmp_path / "mine"
    folder.mkdir()
    _as_array(train[:60], folder / "train.json")
    write_jsonl(dev[:20], folder / "my_dev.jsonl")
    (folder / "stats.json").write_text('{"sentences": 80}', encoding="utf-8")  # shorter name, no split
    (folder / "train_dev.json").write_text("[]", encoding="utf-8")  # two split words: not one split
    out = tmp_path / "mine.toml"
    result = runner.invoke(app, ["schema", "init", "--data", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "(60 train, 20 dev)" in result.output
    draft = load_schema(out)
    assert draft.corpus.splits["train"].file == "train.json"
    assert draft.corpus.splits["dev"].file == "my_dev.jsonl"
    write_jsonl(dev[20:30], folder / "other_dev.jsonl")
    result = runner.invoke(app, ["schema", "init", "--data", str(folder), "--out", str(out), "--force"])
    assert result.exit_code == 2
    assert "2 files could be the dev split (my_dev.jsonl, other_dev.jsonl); name one file" in result.output


def test_a_missing_folder_of_a_users_own_corpus_is_not_told_to_fetch(tmp_path, schema, corpus_dir):
    folder = tmp_path / "mine"
    folder.mkdir()
    write_jsonl(load_split(corpus_dir, "dev", schema)[0][:30], folder / "train.jsonl")
    out = tmp_path / "mine.toml"
    assert runner.invoke(app, ["schema", "init", "--data", str(folder), "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["data", "stats", "--data", str(tmp_path / "gone"), "--schema", str(out)])
    assert result.exit_code == 2 and "data fetch" not in result.output
    assert "pass --data DIR, the folder that holds train.jsonl" in " ".join(result.output.split())
    result = runner.invoke(app, ["data", "stats", "--data", str(tmp_path / "gone")])  # chisre: fetchable
    assert "slcolm data fetch chisre" in result.output
