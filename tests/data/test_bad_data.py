"""Bad input gives one line naming the file, the record and the problem; --skip-bad counts it."""

import json

import pytest
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.errors import DataError
from slcolm_dspy.data.readers import read_records

GOOD = {"entities": [{"type": "PER", "start": 0, "end": 2, "span": "董卓"}], "relations": []}
TEXT = "董卓以其弟旻爲左將軍"


def corpus_file(tmp_path, value, text=TEXT, name="mine.json"):
    path = tmp_path / name
    path.write_text(
        json.dumps({"曹操至洛陽": GOOD | {"entities": []}, text: value}, ensure_ascii=False), "utf-8"
    )
    return path


def two_entities(**relation):
    return {
        "entities": [
            {"type": "PER", "start": 0, "end": 2, "span": "董卓"},
            {"type": "PER", "start": 5, "end": 6, "span": "旻"},
        ],
        "relations": [{"type": "父", "head": 0, "tail": 1} | relation],
    }


CASES = [
    ("missing entities key", {"relations": []}, "missing key 'entities'"),
    ("entity without offsets", {"entities": [{"type": "PER", "span": "董卓"}], "relations": []}, "no start"),
    (
        "offset past the end",
        {"entities": [{"type": "PER", "start": 8, "end": 40, "span": "將軍"}], "relations": []},
        "out of range",
    ),
    (
        "start after end",
        {"entities": [{"type": "PER", "start": 3, "end": 1, "span": "x"}], "relations": []},
        "out of range",
    ),
    (
        "span text differs from offsets",
        {"entities": [{"type": "PER", "start": 0, "end": 2, "span": "曹操"}], "relations": []},
        "does not match text[0:2]",
    ),
    (
        "non-integer offset",
        {"entities": [{"type": "PER", "start": "0", "end": 2, "span": "董卓"}], "relations": []},
        "must be integers",
    ),
    (
        "unknown entity type",
        {"entities": [{"type": "ANIMAL", "start": 0, "end": 2, "span": "董卓"}], "relations": []},
        "unknown entity type 'ANIMAL'",
    ),
    ("relation index out of range", two_entities(tail=7), "tail index 7 out of range (2 entities)"),
    ("unknown relation type", two_entities(type="亲信"), "unknown relation type '亲信'"),
    ("relation without head", {**two_entities(), "relations": [{"type": "父", "tail": 1}]}, "has no head"),
    ("entities not a list", {"entities": {"PER": []}, "relations": []}, "'entities' must be a list"),
    ("head_span disagrees", two_entities(head_span="曹操"), "head_span '曹操' != entity 0"),
]


@pytest.mark.parametrize(("label", "value", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_corpus_record_names_file_record_and_problem(tmp_path, schema, label, value, message):
    path = corpus_file(tmp_path, value)
    with pytest.raises(DataError) as info:
        read_records(path, schema)
    text = str(info.value)
    assert text.startswith(f"{path}: record 2: ")
    assert message in text
    assert "\n" not in text
    records, report = read_records(path, schema, skip_bad=True)
    assert len(records) == 1 and len(report.skipped) == 1


def test_invalid_json_names_line_and_column(tmp_path, schema):
    path = tmp_path / "broken.json"
    path.write_text('{"a": {"entities": []\n  "relations": []}}', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json: invalid JSON at line 2 column 3"):
        read_records(path, schema)


def test_invalid_jsonl_line_is_named(tmp_path, schema):
    path = tmp_path / "preds.jsonl"
    path.write_text('{"id": "a", "text": "董卓"}\n{"id": "b", "text": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"preds\.jsonl: record at line 2: invalid JSON"):
        read_records(path, schema)


def test_jsonl_problems(tmp_path, schema):
    path = tmp_path / "preds.jsonl"
    lines = [
        {"id": "a", "text": "董卓"},
        {"id": "a", "text": "曹操"},
        {"id": "c"},
        {"id": "d", "text": "董卓", "variants": {"simplified": "董"}},
        {
            "id": "e",
            "text": "董卓",
            "entities": [{"type": "PER", "start": 0, "end": 2, "confidence": "high"}],
        },
    ]
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines), encoding="utf-8")
    records, report = read_records(path, schema, skip_bad=True)
    assert [r.id for r in records] == ["a"]
    problems = [e.problem for e in report.skipped]
    assert problems == [
        "duplicate id 'a'",
        "missing key 'text'",
        "'variants' must map form names to texts of equal length",
        "entity 0 confidence must be a number, got 'high'",
    ]


def test_wrong_top_level_shape(tmp_path, schema):
    path = tmp_path / "list.json"
    path.write_text('[{"entities": []}]', encoding="utf-8")
    with pytest.raises(DataError, match="neither 'tokens' \\(SpERT\\) nor 'text' \\(generic\\): entities"):
        read_records(path, schema)


def test_cli_prints_one_line_and_no_traceback(tmp_path):
    bad = corpus_file(tmp_path, {"relations": []})
    result = CliRunner().invoke(app, ["evaluate", "--pred", str(bad), "--gold", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {bad}: record 2: missing key 'entities'"
    assert "Traceback" not in result.output


def test_cli_skip_bad_continues_and_counts(tmp_path):
    bad = corpus_file(tmp_path, {"relations": []})
    result = CliRunner().invoke(app, ["evaluate", "--pred", str(bad), "--gold", str(bad), "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "bad record(s) skipped" in result.stderr


def test_cli_missing_file(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "--pred", str(tmp_path / "nope.jsonl"), "--gold", "x.json"])
    assert result.exit_code == 2
    assert "file not found" in result.stderr and "Traceback" not in result.output
