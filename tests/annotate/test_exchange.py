"""Export for correction and import back: lossless when nothing changed, exactly the edits when
something did, with brat's own files beside the export and the same checks as any input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from slcolm_dspy.annotate.exchange import (
    export_brat,
    export_label_studio,
    import_brat,
    import_label_studio,
)
from slcolm_dspy.core.errors import DataError
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.writers import write_jsonl

runner = CliRunner()


@pytest.fixture(scope="module")
def dev(schema, corpus_dir):
    return load_split(corpus_dir, "dev", schema)[0]


def test_an_unchanged_round_trip_gives_the_records_back_byte_for_byte(dev, schema, tmp_path):
    # ChisRE dev as exported: variants, repeated relations and all
    export_brat(dev, tmp_path / "brat", schema)
    export_label_studio(dev, tmp_path / "ls" / "tasks.json", schema)
    write_jsonl(dev, tmp_path / "before.jsonl")
    for name, (back, report) in {
        "brat": import_brat(tmp_path / "brat", schema),
        "ls": import_label_studio(tmp_path / "ls" / "tasks.json", schema),
    }.items():
        write_jsonl(back, tmp_path / f"{name}.jsonl")
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (tmp_path / "before.jsonl").read_bytes(), name
        assert not report.losses and not report.skipped


def test_brat_files_open_as_brat_configures_them(dev, schema, tmp_path):
    folder = export_brat(dev[:5], tmp_path / "brat", schema)
    conf = (folder / "annotation.conf").read_text(encoding="utf-8")
    sections = [line for line in conf.splitlines() if line.startswith("[")]
    assert sections == ["[entities]", "[relations]", "[events]", "[attributes]"]
    assert "任职\tArg1:<ENTITY>, Arg2:<ENTITY>" in conf and "\nPER\n" in conf
    assert "PER | 人物 | PER" in (folder / "visual.conf").read_text(encoding="utf-8")
    lines = (folder / "selection.txt").read_text(encoding="utf-8").splitlines()
    assert lines == [r.text for r in dev[:5]]
    for line in (folder / "selection.ann").read_text(encoding="utf-8").splitlines():
        assert line.split("\t")[0][0] in "TR#"


def test_a_corrected_ann_comes_back_as_exactly_those_edits(schema, tmp_path):
    record = Sentence(
        "s1",
        "董卓以其弟旻爲左將軍",
        (Entity("PER", "董卓", 0, 2, 0.9), Entity("PER", "旻", 5, 6, 0.8), Entity("OFI", "左將", 7, 9, 0.4)),
        (Relation("兄弟", 0, 1, 0.7),),
    )
    other = Sentence("s2", "曹操字孟德", (Entity("PER", "曹操", 0, 2),), ())
    folder = export_brat([record, other], tmp_path / "brat", schema)
    ann = (folder / "selection.ann").read_text(encoding="utf-8").splitlines()
    assert "#1\tAnnotatorNotes T1\tSLM confidence 0.90" in ann  # the SLM's confidence shown
    edited = []
    for line in ann:
        if line.startswith("T1\t") or "T1\t" in line or "Arg1:T1 " in line:
            continue  # the annotator removed 董卓: brat removes its note and its relation too
        if line.startswith("T3\t"):
            line = "T3\tOFI 7 10\t左將軍"  # moved the span's end
        edited.append(line)
    edited.append("R9\t任职 Arg1:T2 Arg2:T3")  # and added a relation
    (folder / "selection.ann").write_text("\n".join(edited) + "\n", encoding="utf-8")
    (first, second), report = import_brat(folder, schema)
    assert [(e.type, e.text, e.start, e.end) for e in first.entities] == [
        ("PER", "旻", 5, 6),
        ("OFI", "左將軍", 7, 10),
    ]
    assert [(r.type, first.entities[r.head].text, first.entities[r.tail].text) for r in first.relations] == [
        ("任职", "旻", "左將軍")
    ]
    assert not report.losses
    assert all(e.confidence is None for e in first.entities)  # what comes back is gold
    assert second == other and first.id == "s1"


def test_a_bad_offset_in_a_corrected_file_is_named_with_file_and_line(schema, tmp_path):
    folder = export_brat(
        [Sentence("s1", "曹操字孟德", (Entity("PER", "曹操", 0, 2),), ())], tmp_path / "b", schema
    )
    (folder / "selection.ann").write_text("T1\tPER 0 99\t曹操\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"selection\.ann: record line 1: offset 99 out of range"):
        import_brat(folder, schema)


def test_label_studio_takes_the_last_annotation_that_was_not_cancelled(schema, tmp_path):
    record = Sentence("s1", "曹操字孟德", (Entity("PER", "曹操", 0, 2),), ())
    path = export_label_studio([record], tmp_path / "tasks.json", schema)
    tasks = json.loads(path.read_text(encoding="utf-8"))
    span = {"start": 3, "end": 5, "text": "孟德", "labels": ["PER"]}
    tasks[0]["annotations"] = [
        {"result": [{"id": "a", "type": "labels", "from_name": "entity", "to_name": "text", "value": span}]},
        {"was_cancelled": True, "result": []},
    ]
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    (back,), _ = import_label_studio(path, schema)
    assert [(e.text, e.start) for e in back.entities] == [("孟德", 3)] and back.id == "s1"
    assert '<Relation value="任职"/>' in (tmp_path / "label_config.xml").read_text(encoding="utf-8")
