"""Inputs that used to be accepted silently, and crashes that ended in a crash log: each is now a
one-line error (exit 2) naming the file, or a printed count; none hangs."""

from __future__ import annotations

import json
import os
import shutil
import unicodedata
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.readers import read_records
from slcolm_dspy.data.text import read_text

runner = CliRunner()
TEXT = "董卓以其弟旻爲左將軍"


def _line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.jsonl", ""), ("blank.jsonl", "  \n\n \n"), ("obj.json", "{}"), ("list.json", "[]")],
)
def test_empty_inputs_are_refused_unless_allowed(tmp_path, name, content):
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["data", "convert", str(source), "--out", str(out)])
    assert_one_line_error(result, f"{name}: no records in it")
    assert not out.exists()
    allowed = runner.invoke(app, ["data", "convert", str(source), "--out", str(out), "--allow-empty"])
    assert allowed.exit_code == 0 and out.read_text(encoding="utf-8") == ""


def test_an_empty_gold_or_guide_split_is_refused(tmp_path, corpus_dir):
    empty = tmp_path / "gold.jsonl"
    empty.write_text("", encoding="utf-8")
    pred = tmp_path / "pred.jsonl"
    pred.write_text(_line({"id": "a", "text": TEXT}), encoding="utf-8")
    result = runner.invoke(app, ["evaluate", "--gold", str(empty), "--pred", str(pred)])
    assert_one_line_error(result, "gold.jsonl: no records in it")
    result = runner.invoke(
        app, ["guide", "--split", str(empty), "--out", str(tmp_path / "run"), "--data", str(corpus_dir)]
    )
    assert_one_line_error(result, "gold.jsonl: no records in it")


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"text": "   "}, "'text' must be a non-empty string"),
        (
            {"text": TEXT, "entities": [{"type": "PER", "text": "曹操"}]},
            "'曹操' has no offsets and is not in",
        ),
        (
            {"text": TEXT, "variants": {"simplified": "一二三四五六七八九十"}},
            "variant 'simplified' is not a form",
        ),
    ],
)
def test_records_that_cannot_be_right_are_one_line(tmp_path, record, words):
    source = tmp_path / "in.jsonl"
    source.write_text(_line({"id": "a", **record}), encoding="utf-8")
    result = runner.invoke(app, ["data", "convert", str(source), "--out", str(tmp_path / "o.jsonl")])
    assert_one_line_error(result, "in.jsonl", "line 1", words)


def test_a_simplified_variant_is_a_form_of_its_traditional_text(tmp_path, schema, corpus_dir):
    dev, _ = read_records(corpus_dir / "dev.json", schema)
    with_form = [r for r in dev if r.variants]
    assert with_form  # ChisRE's dev carries its simplified form: every one passes the check
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(_line(r.to_json()) for r in with_form), encoding="utf-8")
    again, _ = read_records(path, schema)
    assert again == with_form


def test_repeated_entities_and_relations_are_counted_and_kept(tmp_path):
    entity = {"type": "PER", "start": 0, "end": 2}
    relation = {"type": "兄弟", "head": 0, "tail": 1}
    record = {
        "id": "a",
        "text": TEXT,
        "entities": [entity, {"type": "PER", "start": 5, "end": 6}, entity],
        "relations": [relation, relation],
    }
    source = tmp_path / "in.jsonl"
    source.write_text(_line(record), encoding="utf-8")
    result = runner.invoke(app, ["data", "convert", str(source), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert (
        "repeated entities (kept as written): 1" in text and "repeated relations (kept as written): 1" in text
    )


def test_outputs_that_would_destroy_or_hang(tmp_path, tiny_slm):
    source = tmp_path / "in.jsonl"
    source.write_text(_line({"id": "a", "text": TEXT}), encoding="utf-8")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = runner.invoke(app, ["data", "convert", str(source), "--out", str(fifo)])
    assert_one_line_error(result, "is not a regular file")
    assert fifo.exists() and not fifo.is_file()  # not replaced by a file
    result = runner.invoke(app, ["data", "convert", str(source), "--out", str(source)])
    assert_one_line_error(result, "is the input file too")
    result = runner.invoke(
        app, ["slm", "predict", "--model", str(tiny_slm[0]), "--data", str(source), "--out", str(source)]
    )
    assert_one_line_error(result, "is the input file too")
    assert json.loads(source.read_text(encoding="utf-8")) == {"id": "a", "text": TEXT}
    # a FIFO with no writer as the input: refused at once (reading it would never end)
    result = runner.invoke(app, ["data", "convert", str(fifo), "--out", str(tmp_path / "o.jsonl")])
    assert_one_line_error(result, "pipe is not a regular file")
    # a folder that cannot be written (/proc/self takes no new files, even for root)
    result = runner.invoke(app, ["data", "convert", str(source), "--out", "/proc/self/o.jsonl"])
    assert_one_line_error(result, "cannot write in /proc/self")


def test_a_byte_order_mark_is_not_text(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("\ufeff".encode() + f"{TEXT}。\n".encode())
    (first,) = read_text(path)
    assert first.text == f"{TEXT}。"


def test_extract_given_a_folder_named_txt_is_one_line(tmp_path, schema, tiny_slm):
    from program_helpers import save_slm_program

    program = save_slm_program(schema, tiny_slm[0], tmp_path / "prog")
    folder = tmp_path / "chapter.txt"
    folder.mkdir()
    result = runner.invoke(
        app, ["extract", "--program", str(program), str(folder), "--out", str(tmp_path / "o.jsonl")]
    )
    assert_one_line_error(result, "chapter.txt is a folder")


def test_a_replay_pack_with_expected_numbers_of_the_wrong_shape_is_one_line(tmp_path, replay_dir):
    pack = tmp_path / "pack"
    shutil.copytree(replay_dir, pack)
    blob = json.loads((pack / "expected.json").read_text(encoding="utf-8"))
    run = next(iter(blob["runs"]))
    blob["runs"][run]["expected"]["micro_pct"] = 61.0
    (pack / "expected.json").write_text(json.dumps(blob), encoding="utf-8")
    result = runner.invoke(app, ["replay", "--pack", str(pack)])
    assert_one_line_error(
        result, "expected.json", f"runs.{run}.expected.micro_pct must be [precision, recall, F1]"
    )


def test_a_span_differing_only_in_unicode_normalisation_says_so(tmp_path):
    schema_file = Path(__file__).resolve().parents[1] / "fixtures" / "english" / "schema.toml"
    text = unicodedata.normalize("NFC", "José Martí lives in Havana .")
    span = unicodedata.normalize("NFD", "José")
    record = {"id": "a", "text": text, "entities": [{"type": "Peop", "start": 0, "end": 4, "text": span}]}
    source = tmp_path / "in.jsonl"
    source.write_text(_line(record), encoding="utf-8")
    schema = load_schema(schema_file)
    result = runner.invoke(
        app, ["data", "convert", str(source), "--out", str(tmp_path / "o.jsonl"), "--schema", schema.source]
    )
    assert_one_line_error(result, "differ only in Unicode normalisation")
