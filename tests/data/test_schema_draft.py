"""`slcolm schema init` drafts a schema whose inventories match the shipped ones; `schema check`
names each problem between a schema and the data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.draft import check_schema, draft_schema

runner = CliRunner()


def test_chisre_draft_matches_the_shipped_inventories(corpus_dir, schema, tmp_path):
    text, summary = draft_schema([corpus_dir], "chisre")
    assert set(summary["relation_types"]) == set(schema.relation_types)
    assert set(summary["entity_types"]) == set(schema.entity_names)
    assert summary["language"] == "zh" and summary["normalise"]["cut_at"] == "&"
    # types that only dev/test use are reported for label_fixes, not added
    assert summary["not_in_train"]["test"] == ["其他亲属", "负面行为"]
    assert set(summary["head"]) == set(schema.head_types)  # the same threshold (100) gives the same split
    path = tmp_path / "draft.toml"
    path.write_text(text, encoding="utf-8")
    draft = load_schema(path)
    assert draft.relation_types[0] == "任职" and draft.primary_protocol == "strict"
    problems = check_schema(draft, [corpus_dir])
    assert sum("has no definition" in p for p in problems) == 40
    assert any("'其他亲属' (1 in test) is in neither [relations].types nor skip" in p for p in problems)
    assert check_schema(schema, [corpus_dir]) == []


CONLL04 = Path(__file__).resolve().parents[3] / "shared" / "data" / "conll04"


def test_cli_drafts_and_checks_an_english_corpus(tmp_path):
    if not (CONLL04 / "conll04_train.json").is_file():
        pytest.skip("CoNLL04 not found")
    out = tmp_path / "conll04_draft.toml"
    result = runner.invoke(
        app, ["schema", "init", "--data", str(CONLL04), "--out", str(out), "--head-threshold", "200"]
    )
    assert result.exit_code == 0, result.output
    draft = load_schema(out)
    shipped = load_schema("conll04")
    assert set(draft.relation_types) == set(shipped.relation_types)
    assert draft.head_types == shipped.head_types and draft.language == "en"
    result = runner.invoke(app, ["schema", "check", "--schema", str(out), "--data", str(CONLL04)])
    assert result.exit_code == 1 and "'Kill' has no definition" in result.output
    result = runner.invoke(app, ["schema", "check", "--schema", "conll04", "--data", str(CONLL04)])
    assert result.exit_code == 0, result.output
    # a type the schema lacks is named with its split and count
    broken = tmp_path / "data"
    broken.mkdir()
    records = json.loads((CONLL04 / "conll04_train.json").read_text(encoding="utf-8"))[:20]
    records[0]["relations"][0]["type"] = "Born_In"
    (broken / "train.json").write_text(json.dumps(records), encoding="utf-8")
    result = runner.invoke(app, ["schema", "check", "--schema", "conll04", "--data", str(broken)])
    assert (
        result.exit_code == 1
        and "'Born_In' (1 in train) is in neither [relations].types nor skip" in result.output
    )
    result = runner.invoke(app, ["schema", "init", "--data", str(CONLL04), "--out", str(out)])
    assert result.exit_code == 2 and "--force" in result.output
