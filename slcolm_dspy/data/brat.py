"""brat standoff: a `.txt` document and its `.ann` annotations, or a directory of such pairs.

Documents are cut into sentences (line breaks, then `data.text.split_sentences`); each record's
id is `<document>:<offset of the sentence in the document>`, so document offsets are the
record's offsets plus that number. What cannot become a sentence-level record is reported
with its file and line, never dropped silently: discontinuous spans (`T1 PER 0 3;5 8`),
offsets whose text differs from the annotation's, entities that cross a sentence end, and
relations whose arguments lie in different sentences (counted and listed). Event, attribute,
normalisation and note lines (`E`, `A`, `M`, `N`, `#`, `*`) are counted and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slcolm_dspy.core.errors import DataError, SlcolmError
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.data.build import ReadReport, SentenceBuilder
from slcolm_dspy.data.text import split_sentences


@dataclass
class _Mention:
    type: str
    start: int
    end: int
    line: int


def brat_documents(path: Path) -> list[Path]:
    """The `.ann` files a path names (a directory: every one under it, sorted)."""
    if path.is_dir():
        found = sorted(path.rglob("*.ann"))
        if not found:
            raise SlcolmError(f"{path}: no .ann files (brat standoff) in this directory")
        return found
    ann = path.with_suffix(".ann")
    if not ann.is_file():
        raise SlcolmError(f"{path}: no brat annotation file {ann.name} beside it")
    return [ann]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SlcolmError(f"{path}: file not found (a brat .ann needs its .txt)") from None
    except UnicodeDecodeError as exc:
        raise SlcolmError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    pos = 0
    for line in text.splitlines(keepends=True):
        for start, sentence in split_sentences(line.rstrip("\r\n")):
            spans.append((pos + start, pos + start + len(sentence)))
        pos += len(line)
    return spans


def read_brat(path: Path, schema: Schema, *, skip_bad: bool = False) -> tuple[list[Sentence], ReadReport]:
    report = ReadReport(str(path))
    records: list[Sentence] = []
    for ann in brat_documents(path):
        records += _document(ann, schema, report, skip_bad)
    return records, report


def _document(ann: Path, schema: Schema, report: ReadReport, skip_bad: bool) -> list[Sentence]:
    text = _read(ann.with_suffix(".txt"))
    builder = SentenceBuilder(schema, str(ann))
    mentions: dict[str, _Mention] = {}
    relations: list[tuple[str, str, str, int]] = []

    def problem(line: int, what: str) -> None:
        report.problems.append(f"{ann}:{line}: {what}")

    for lineno, line in enumerate(_read(ann).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        ident = parts[0]
        kind = ident[:1]
        try:
            if kind == "T":
                if len(parts) < 3:
                    raise builder.fail(f"line {lineno}", "a T line needs ID, 'Type start end' and text")
                head = parts[1].split(" ", 1)
                if len(head) != 2:
                    raise builder.fail(f"line {lineno}", f"no offsets in {parts[1]!r}")
                etype, offsets = head
                if ";" in offsets:
                    problem(lineno, f"{ident}: discontinuous span {offsets!r} skipped")
                    report.counts["discontinuous"] += 1
                    continue
                bounds = offsets.split()
                if len(bounds) != 2 or not all(b.isdigit() for b in bounds):
                    raise builder.fail(f"line {lineno}", f"offsets must be two integers, got {offsets!r}")
                start, end = int(bounds[0]), int(bounds[1])
                if not 0 <= start < end <= len(text):
                    raise builder.fail(
                        f"line {lineno}",
                        f"offsets {start}..{end} out of range for a {len(text)}-char document",
                    )
                if text[start:end] != parts[2]:
                    problem(
                        lineno, f"{ident}: text[{start}:{end}] = {text[start:end]!r} != {parts[2]!r}; skipped"
                    )
                    report.counts["offset_mismatch"] += 1
                    continue
                mentions[ident] = _Mention(builder.entity_type(etype, f"line {lineno}"), start, end, lineno)
            elif kind == "R":
                fields = parts[1].split() if len(parts) > 1 else []
                args = dict(f.split(":", 1) for f in fields[1:] if ":" in f)
                if len(fields) < 3 or "Arg1" not in args or "Arg2" not in args:
                    raise builder.fail(f"line {lineno}", "an R line needs 'Type Arg1:T.. Arg2:T..'")
                rel_type = builder.relation_type(fields[0], f"line {lineno}")
                relations.append((rel_type, args["Arg1"], args["Arg2"], lineno))
            else:
                report.counts[f"{kind or 'blank'} lines skipped"] += 1
        except DataError as err:
            if not skip_bad:
                raise
            report.skipped.append(err)
    return _sentences(ann, text, mentions, relations, report)


def _sentences(
    ann: Path,
    text: str,
    mentions: dict[str, _Mention],
    relations: list[tuple[str, str, str, int]],
    report: ReadReport,
) -> list[Sentence]:
    spans = _sentence_spans(text)
    where: dict[str, int] = {}
    for ident, m in mentions.items():
        inside = [i for i, (s, e) in enumerate(spans) if s <= m.start and m.end <= e]
        if inside:
            where[ident] = inside[0]
        else:
            report.problems.append(f"{ann}:{m.line}: {ident} crosses a sentence end; skipped")
            report.counts["entity_crosses_sentence"] += 1
    per_sentence: dict[int, list[str]] = {}
    for ident in sorted(where, key=lambda i: (mentions[i].start, mentions[i].end)):
        per_sentence.setdefault(where[ident], []).append(ident)
    rels: dict[int, list[tuple[str, str, str]]] = {}
    for rel_type, a, b, line in relations:
        if a not in where or b not in where:
            missing = a if a not in where else b
            report.problems.append(f"{ann}:{line}: argument {missing} is not a kept entity; relation skipped")
            report.counts["relation_argument_missing"] += 1
            continue
        if where[a] != where[b]:
            report.problems.append(f"{ann}:{line}: {rel_type} joins {a} and {b} across sentences")
            report.counts["cross_sentence_relations"] += 1
            continue
        rels.setdefault(where[a], []).append((rel_type, a, b))
    out = []
    doc = ann.stem
    for i, (s, e) in enumerate(spans):
        idents = per_sentence.get(i, [])
        index = {ident: k for k, ident in enumerate(idents)}
        ents = tuple(
            Entity(
                mentions[t].type,
                text[mentions[t].start : mentions[t].end],
                mentions[t].start - s,
                mentions[t].end - s,
            )
            for t in idents
        )
        relations_here = tuple(Relation(rt, index[a], index[b]) for rt, a, b in rels.get(i, []))
        out.append(Sentence(f"{doc}:{s}", text[s:e], ents, relations_here))
        report.counts["sentences"] += 1
    report.counts["documents"] += 1
    return out
