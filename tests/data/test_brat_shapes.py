"""brat corpora as people have them, written from the shared corpora (tests/brat_shapes.py):
hard-wrapped, CRLF, a byte-order mark, shifted offsets, stray cross-sentence types, duplicate
ids. They go through `schema init` -> `data convert` with nothing lost that a record can hold,
and every loss counted by cause."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from brat_shapes import Shape, write_brat
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.schema import load_schema, open_schema
from slcolm_dspy.data.brat import BratOptions, looks_hard_wrapped, read_brat
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.readers import read_spert

runner = CliRunner()
CONLL04 = Path(__file__).resolve().parents[3] / "shared" / "data" / "conll04"


@pytest.fixture(scope="module")
def chisre_train(schema, corpus_dir):
    return load_split(corpus_dir, "train", schema)[0]


def _wrapped_history(chisre_train, folder: Path, **shape: object):
    settings = {"per_paragraph": 5, "wrap": 30, "crlf": True, "bom": True, "stray_type": "Coreference"}
    return write_brat(chisre_train, folder, "history", Shape(**(settings | shape)))


def _triples(records) -> Counter:
    return Counter(t for r in records for t in r.triples())


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_hard_wrapped_crlf_history_goes_through_init_and_convert_without_loss(chisre_train, tmp_path):
    folder = tmp_path / "train"
    written = _wrapped_history(chisre_train, folder)
    assert written.fragments > 10 and written.stray > 10  # the shape holds what it should
    draft = tmp_path / "history.toml"
    result = _invoke("schema", "init", "--data", folder, "--out", draft, "--unit", "paragraph")
    assert result.exit_code == 0, result.output
    assert "Coreference" in load_schema(draft).relation_types  # within a paragraph: kept
    assert load_schema(draft).corpus.brat == {"line_breaks": "auto", "unit": "paragraph"}
    stats = _invoke("data", "stats", "--data", tmp_path, "--schema", draft)  # reads it the same way
    assert stats.exit_code == 0 and f"{len(written.triples)}" in stats.output, stats.output
    out = tmp_path / "train.jsonl"
    result = _invoke("data", "convert", folder, "--out", out, "--schema", draft, "--unit", "paragraph")
    assert result.exit_code == 0, result.output
    assert "lost:" not in result.output and "hard-wrapped documents" in result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    # the text is the corpus's, wrap breaks and CRLF and BOM gone; every relation is there
    assert "".join(line["text"] for line in lines) == "".join(r.text for r in chisre_train)
    got = Counter(
        (rel["type"], line["entities"][rel["head"]]["text"], line["entities"][rel["tail"]]["text"])
        for line in lines
        for rel in line["relations"]
    )
    assert got == Counter(written.triples)
    assert sum(n for k, n in got.items() if k[0] == "Coreference") == written.stray


def test_a_type_only_across_sentences_is_skipped_by_the_draft_and_counted_by_convert(chisre_train, tmp_path):
    folder = tmp_path / "train"
    written = _wrapped_history(chisre_train, folder)
    draft = tmp_path / "history.toml"
    result = _invoke("schema", "init", "--data", folder, "--out", draft)
    assert result.exit_code == 0, result.output
    assert f"skipped (no relation readable as a record): Coreference ({written.stray} cross sentence" in (
        result.output
    )
    schema = load_schema(draft)
    assert "Coreference" in schema.skip_relation_types and "Coreference" not in schema.relation_types
    check = _invoke("schema", "check", "--schema", draft, "--data", folder)
    assert "Coreference" not in check.output  # the draft chose to skip it: not a problem
    out = tmp_path / "train.jsonl"
    result = _invoke("data", "convert", folder, "--out", out, "--schema", draft)
    assert result.exit_code == 0, result.output
    skipped = re.search(r"lost: (\d+) relations of a type the schema skips", result.output)
    assert skipped and int(skipped.group(1)) >= written.stray and "is a Coreference relation" in result.output
    assert re.search(r"lost: \d+ relations across sentences", result.output)
    # a schema that neither lists nor skips it: check names the type and why it was not read
    text = re.sub(r'"Coreference",? ?(?=[^\n]*\]$)', "", draft.read_text(encoding="utf-8"), flags=re.M)
    draft.write_text(text, encoding="utf-8")
    check = _invoke("schema", "check", "--schema", draft, "--data", folder)
    assert check.exit_code == 1
    assert f"relation type 'Coreference' is in the data ({written.stray} cross sentence)" in check.output


def test_offsets_counted_on_lf_in_a_crlf_file_and_shifted_offsets_are_realigned(chisre_train, tmp_path):
    folder = tmp_path / "docs"
    write_brat(chisre_train[:40], folder, "lf", Shape(per_paragraph=5, wrap=None))
    txt = folder / "lf.txt"
    txt.write_bytes(txt.read_bytes().replace(b"\n", b"\r\n"))  # offsets still count LF ends
    whole = BratOptions(unit="paragraph")
    records, report = read_brat(folder, open_schema(), options=whole)
    assert not report.losses
    assert report.counts["documents with offsets counted as written, CRLF read as LF"] == 1
    assert _triples(records) == _triples(chisre_train[:40])
    # an upstream edit shifted every offset after the 10th entity by 3 characters
    ann = folder / "lf.ann"
    lines = ann.read_text(encoding="utf-8").splitlines()
    shifted = 0
    for i, line in enumerate(lines):
        if line.startswith("T") and int(line.split("\t")[0][1:]) > 10:
            ident, head, text = line.split("\t")
            etype, start, end = head.split(" ")
            lines[i] = f"{ident}\t{etype} {int(start) + 3} {int(end) + 3}\t{text}"
            shifted += 1
    ann.write_text("\n".join(lines) + "\n", encoding="utf-8")
    moved, report = read_brat(folder, open_schema(), options=whole)
    assert not report.losses and report.counts["entity offsets realigned to a nearby match"] == shifted
    assert _triples(moved) == _triples(records)


def test_single_line_breaks_as_sentence_ends_lose_what_the_wrap_split(chisre_train, tmp_path):
    folder = tmp_path / "train"
    _wrapped_history(chisre_train, folder, stray_type=None)
    text = (folder / "history.txt").read_text(encoding="utf-8")
    assert looks_hard_wrapped(text)
    # one sentence per line (the shipped fixture, the corpus written line by line): not wrapped
    assert not looks_hard_wrapped("\n".join(r.text for r in chisre_train))
    records, report = read_brat(folder, open_schema(), options=BratOptions(line_breaks="sentence"))
    assert report.losses["entity_across_units"] > 0 and report.losses["cross_sentence"] > 0
    assert len(records) > 2 * len(chisre_train)


def test_english_news_wrapped_at_sixty_columns_reads_back_whole(tmp_path):
    if not (CONLL04 / "conll04_train.json").is_file():
        pytest.skip("conll04 not found beside the checkout")
    news, _ = read_spert(CONLL04 / "conll04_train.json", load_schema("conll04"))
    news = news
    folder = tmp_path / "en"
    written = write_brat(news, folder, "news", Shape(per_paragraph=3, joiner=" ", wrap=60))
    assert written.fragments > 10
    records, report = read_brat(folder, open_schema(), options=BratOptions(unit="paragraph"))
    assert not report.losses
    assert " ".join(r.text for r in records) == " ".join(r.text for r in news)
    assert _triples(records) == Counter(written.triples)
    assert sum(len(r.entities) for r in records) == sum(len(r.entities) for r in news)


def test_duplicate_ids_self_relations_and_continued_text_lines(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.txt").write_text("Ada met Charles Babbage.\n", encoding="utf-8")
    ann = folder / "a.ann"
    ann.write_text("T1\tPerson 0 3\tAda\nT1\tPerson 8 15\tCharles\n", encoding="utf-8")
    result = _invoke("data", "convert", folder, "--out", tmp_path / "o.jsonl", "--schema", "conll04")
    assert (
        result.exit_code == 2 and "a.ann: record line 2: duplicate id T1 (first at line 1)" in result.output
    )
    # with --skip-bad only the bad lines are left out (counted); the document's other lines stay
    lines = [
        "T1\tPerson 0 3\tAda",
        "T1\tPerson 8 15\tCharles",
        "T2\tPerson 16 23\tBabbage",
        "T3\tPerson 0 99\tAda",
    ]
    ann.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, report = read_brat(folder, open_schema(), skip_bad=True)
    assert [e.text for e in records[0].entities] == ["Ada", "Babbage"]
    assert [err.record for err in report.skipped] == ["line 2", "line 4"]
    ann.write_text("T1\tPeop 0 3\tAda\nR1\tKill Arg1:T1 Arg2:T1\n", encoding="utf-8")
    result = _invoke("schema", "init", "--data", folder, "--out", tmp_path / "x.toml")
    assert result.exit_code == 2 and "line 2: R1 joins T1 with itself" in result.output
    # a text field that held a line break continues on the next line: joined, not an error
    ann.write_text("T1\tPeop 8 23\tCharles\nBabbage\nT2\tPeop 0 3\tAda\n", encoding="utf-8")
    records, report = read_brat(folder, open_schema())
    assert [e.text for e in records[0].entities] == ["Ada", "Charles Babbage"]
    assert report.counts["continuation lines joined to the entity text above"] == 1
