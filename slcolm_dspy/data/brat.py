"""brat standoff: a `.txt` document and its `.ann` annotations, or a directory of such pairs.

Documents are cut into units (sentences, or paragraphs with `unit="paragraph"`); a record's id
is `<document>:<offset of the unit in the document>`. brat files as people have them:

- **Hard-wrapped text.** Many corpora break their `.txt` every N characters inside sentences.
  With `line_breaks="auto"` (the default) a document whose lines run to one width and end
  mid-sentence is read as wrapped: a single line break is not a sentence end (blank lines
  are). Inside a unit a break becomes one space between words, nothing between characters of
  an unsegmented script, so a record's offsets are the document's, less the breaks dropped.
- **Fragments** (`T1 PER 10 12;13 15`) separated only by line breaks or spaces are one entity;
  a real gap is a discontinuous entity, which a record cannot hold.
- **Offsets** off by a few characters are realigned to the nearest exact match of the
  annotation's text (counted); **CRLF** line ends and a **byte-order mark** are handled by
  reading offsets in whichever count (raw, LF, without BOM) the annotations match best.
- **Duplicate ids** and **self-relations** are refused with file and line.

Whatever cannot become a record is counted once per cause (`build.LOSS_CAUSES`) with the file
and line of each case: a discontinuous entity, an offset with no nearby match, an entity across a
unit end, a relation across units, a relation whose argument was lost, a relation type the
schema skips. Event, attribute, normalisation and note lines are counted and skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from slcolm_dspy.core.errors import DataError, SlcolmError
from slcolm_dspy.core.language import detect_unsegmented, is_unsegmented_char
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.data.build import ReadReport, SentenceBuilder
from slcolm_dspy.data.text import split_sentences

LINE_BREAK_MODES = ("auto", "sentence", "wrap")
UNITS = ("sentence", "paragraph")
REALIGN_WINDOW = 32  # characters either side of the written offsets searched for the annotation's text
_KINDS = {
    "T": "text-bound",
    "R": "relation",
    "E": "event",
    "A": "attribute",
    "M": "attribute",
    "N": "normalisation",
    "#": "note",
    "*": "equivalence",
}
_ID = re.compile(r"^(?:[TREAMN]\d+|#\d*|\*)$")
_SENTENCE_END = "。！？!?.」』”’）)\"'"


@dataclass(frozen=True)
class BratOptions:
    line_breaks: str = "auto"  # sentence: every break ends a sentence; wrap: only blank lines do
    unit: str = "sentence"  # or paragraph: keeps relations across sentences of one paragraph

    def __post_init__(self) -> None:
        if self.line_breaks not in LINE_BREAK_MODES:
            raise SlcolmError(f"--line-breaks must be one of {', '.join(LINE_BREAK_MODES)}")
        if self.unit not in UNITS:
            raise SlcolmError(f"--unit must be one of {', '.join(UNITS)}")


@dataclass
class _TextBound:
    ident: str
    type: str
    fragments: list[tuple[int, int]]
    text: str
    line: int


@dataclass
class _RelationLine:
    ident: str
    type: str
    arg1: str
    arg2: str
    line: int


@dataclass
class _Annotations:
    textbounds: list[_TextBound] = field(default_factory=list)
    relations: list[_RelationLine] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # other annotation kinds, by kind


@dataclass(frozen=True)
class _Unit:
    """A piece of the document that becomes one record: `text[i]` is the document's character
    at `positions[i]` (a line break inside the unit may read as a space or be dropped)."""

    positions: tuple[int, ...]
    text: str


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
    """The file's characters as written: CRLF stays CRLF (brat tools count offsets either way)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        raise SlcolmError(f"{path}: file not found (a brat .ann needs its .txt)") from None
    except UnicodeDecodeError as exc:
        raise SlcolmError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_brat(
    path: Path, schema: Schema, *, skip_bad: bool = False, options: BratOptions | None = None
) -> tuple[list[Sentence], ReadReport]:
    report = ReadReport(str(path))
    records: list[Sentence] = []
    for ann in brat_documents(path):
        try:
            records += _document(ann, schema, report, options or BratOptions(), skip_bad)
        except DataError as err:  # the document as a whole (an offset outside it)
            _skip_or_raise(err, skip_bad, report)
    return records, report


def _skip_or_raise(err: DataError, skip_bad: bool, report: ReadReport) -> None:
    """A bad annotation line: raised, or (`skip_bad`) counted and left out, the rest kept."""
    if not skip_bad:
        raise err
    report.skipped.append(err)


# --- phase 1: the annotation lines ---------------------------------------------------------


def parse_annotations(
    ann: Path, builder: SentenceBuilder, report: ReadReport, skip_bad: bool = False
) -> _Annotations:
    """Every line of an `.ann` file, checked. A line that does not start with an annotation id
    continues the text of the entity above it (a text field that held a line break)."""
    out = _Annotations()
    first_line: dict[str, int] = {}
    open_text: _TextBound | None = None  # the entity whose text a following line may continue
    for lineno, line in enumerate(_read(ann).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        ident = parts[0]
        try:
            if not _ID.match(ident):
                if open_text is None:
                    raise builder.fail(f"line {lineno}", f"not a brat annotation line: {line[:40]!r}")
                open_text.text += "\n" + line
                report.counts["continuation lines joined to the entity text above"] += 1
                continue
            open_text = None
            if ident in first_line and ident[0] in "TR":
                first = first_line[ident]
                raise builder.fail(f"line {lineno}", f"duplicate id {ident} (first at line {first})")
            first_line[ident] = lineno
            if ident[0] == "T":
                open_text = _textbound(parts, lineno, builder)
                out.textbounds.append(open_text)
            elif ident[0] == "R":
                out.relations.append(_relation_line(parts, lineno, builder))
            else:
                out.skipped[_KINDS[ident[0]]] += 1
        except DataError as err:
            _skip_or_raise(err, skip_bad, report)
    return out


def _textbound(parts: list[str], lineno: int, builder: SentenceBuilder) -> _TextBound:
    where = f"line {lineno}"
    if len(parts) < 3:
        raise builder.fail(where, "a T line needs ID, 'Type start end' and text")
    head = parts[1].split(" ", 1)
    if len(head) != 2:
        raise builder.fail(where, f"no offsets in {parts[1]!r}")
    fragments = []
    for piece in head[1].split(";"):
        bounds = piece.split()
        if len(bounds) != 2 or not all(b.isdigit() for b in bounds):
            raise builder.fail(where, f"offsets must be pairs of integers, got {head[1]!r}")
        start, end = int(bounds[0]), int(bounds[1])
        if start >= end:
            raise builder.fail(where, f"empty or reversed span {start}..{end}")
        fragments.append((start, end))
    etype = builder.entity_type(head[0], where)
    return _TextBound(parts[0], etype, fragments, "\t".join(parts[2:]), lineno)


def _relation_line(parts: list[str], lineno: int, builder: SentenceBuilder) -> _RelationLine:
    where = f"line {lineno}"
    fields = parts[1].split() if len(parts) > 1 else []
    args = dict(f.split(":", 1) for f in fields[1:] if ":" in f)
    if len(fields) < 3 or "Arg1" not in args or "Arg2" not in args:
        raise builder.fail(where, "an R line needs 'Type Arg1:T.. Arg2:T..'")
    if args["Arg1"] == args["Arg2"]:
        raise builder.fail(where, f"{parts[0]} joins {args['Arg1']} with itself")
    return _RelationLine(parts[0], fields[0], args["Arg1"], args["Arg2"], lineno)


# --- phase 2: which character count the offsets use ----------------------------------------


def _readings(raw: str) -> list[tuple[str, str]]:
    """(name, text) of every character count a tool may have used for the offsets."""
    out = [("as written", raw)]
    if raw.startswith("\ufeff"):
        out.append(("without the byte-order mark", raw[1:]))
    if "\r\n" in raw:
        out += [(f"{name}, CRLF read as LF", text.replace("\r\n", "\n")) for name, text in list(out)]
    return out


def _matches(text: str, bound: _TextBound) -> bool:
    return all(end <= len(text) for _, end in bound.fragments) and _squash(
        _fragment_text(text, bound.fragments)
    ) == _squash(bound.text)


def _fragment_text(text: str, fragments: list[tuple[int, int]]) -> str:
    return " ".join(text[s:e] for s, e in fragments)


def _squash(text: str) -> str:
    return "".join(text.split())


def choose_reading(raw: str, bounds: list[_TextBound], report: ReadReport) -> str:
    """The reading of the document in which most entities' offsets hit their text; a byte-order
    mark kept in the text reads as a space (it is not part of any sentence)."""
    readings = _readings(raw)
    scores = [sum(_matches(text, b) for b in bounds) for _, text in readings]
    best = max(range(len(readings)), key=lambda i: (scores[i], -i))
    name, text = readings[best]
    if best:
        report.counts[f"documents with offsets counted {name}"] += 1
    return text.replace("\ufeff", " ")


# --- phase 3: entity offsets -----------------------------------------------------------------


def ground(
    text: str, bound: _TextBound, builder: SentenceBuilder, report: ReadReport
) -> tuple[int, int] | None:
    """The entity's (start, end) in the document, or None when it is lost (counted by cause)."""
    where = f"{builder.source}:{bound.line}: {bound.ident}"
    fragments = sorted(bound.fragments)
    if fragments[-1][1] > len(text):
        raise builder.fail(
            f"line {bound.line}", f"offset {fragments[-1][1]} out of range for a {len(text)}-char document"
        )
    if len(fragments) > 1:
        gaps = [text[e:s] for (_, e), (s, _) in pairwise(fragments)]
        if any(gap.strip() for gap in gaps):
            report.lose("discontinuous", f"{where}: discontinuous span {fragments}")
            return None
        report.counts["fragments joined across line breaks or spaces"] += 1
    start, end = fragments[0][0], fragments[-1][1]
    if _squash(text[start:end]) == _squash(bound.text):
        return start, end
    moved = _realign(text, bound.text, start)
    if moved is None:
        report.lose("offset", f"{where}: text[{start}:{end}] = {text[start:end]!r} != {bound.text!r}")
        return None
    report.counts["entity offsets realigned to a nearby match"] += 1
    return moved


def _realign(text: str, wanted: str, start: int) -> tuple[int, int] | None:
    """The exact occurrence of `wanted` nearest `start` within REALIGN_WINDOW characters."""
    if not wanted.strip():
        return None
    lo = max(0, start - REALIGN_WINDOW)
    hi = min(len(text), start + len(wanted) + REALIGN_WINDOW)
    hits = [m.start() for m in re.finditer(re.escape(wanted), text[lo:hi])]
    if not hits:
        return None
    best = min(hits, key=lambda h: abs(lo + h - start))
    return lo + best, lo + best + len(wanted)


# --- phase 4: units ----------------------------------------------------------------------


def looks_hard_wrapped(text: str) -> bool:
    """Lines followed by another line run to one width and mostly end mid-sentence: the file
    was wrapped at that width, and its single line breaks are not sentence ends."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    followed = [a for a, b in pairwise(lines) if a.strip() and b.strip()]
    if len(followed) < 3:
        return False
    width = max(len(line) for line in lines)
    near = sum(len(line) >= 0.85 * width for line in followed)
    open_ended = sum(not line.endswith(tuple(_SENTENCE_END)) for line in followed)
    return near >= 0.6 * len(followed) and open_ended >= 0.5 * len(followed)


_LINE = re.compile(r"[^\r\n]+")
_BETWEEN_PARAGRAPHS = re.compile(r"\r?\n(?:[ \t\u3000]*\r?\n)+")


def _paragraphs(text: str, wrapped: bool) -> list[tuple[int, int]]:
    """(start, end) of each paragraph: a line, or (wrapped) the lines up to a blank one."""
    if not wrapped:
        spans = [m.span() for m in _LINE.finditer(text)]
    else:
        cuts = [m.span() for m in _BETWEEN_PARAGRAPHS.finditer(text)]
        starts = [0, *(e for _, e in cuts)]
        ends = [*(s for s, _ in cuts), len(text)]
        spans = list(zip(starts, ends, strict=True))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _joined(text: str, start: int, end: int, unsegmented: bool = False) -> _Unit:
    """text[start:end] with each line break read as one space between words, or dropped beside
    a space or beside a character of an unsegmented script or CJK punctuation; in a document of
    an unsegmented script (`unsegmented`) always dropped ("1\n3" in Chinese is "13")."""
    positions, chars = [], []
    i = start
    while i < end:
        if text[i] not in "\r\n":
            positions.append(i)
            chars.append(text[i])
            i += 1
            continue
        j = i
        while j < end and text[j] in "\r\n":
            j += 1
        before = chars[-1] if chars else " "
        after = text[j] if j < end else " "
        gap = before.isspace() or after.isspace() or _closes_up(before) or _closes_up(after)
        if not (unsegmented or gap):
            positions.append(i)
            chars.append(" ")
        i = j
    return _Unit(tuple(positions), "".join(chars))


def _closes_up(char: str) -> bool:
    """Characters written without spaces around them: unsegmented scripts, CJK punctuation and
    full-width forms (a wrap beside one is not a word gap)."""
    return is_unsegmented_char(char) or "\u3000" <= char <= "\u303f" or "\uff00" <= char <= "\uffef"


def units(text: str, options: BratOptions, report: ReadReport) -> list[_Unit]:
    """The document's records-to-be: sentences (or paragraphs) with their document positions."""
    wrapped = options.line_breaks == "wrap" or (options.line_breaks == "auto" and looks_hard_wrapped(text))
    if wrapped:
        report.counts["hard-wrapped documents (single line breaks read as spaces)"] += 1
    unsegmented = detect_unsegmented([re.sub(r"\s+", "", text)])  # line breaks are not word gaps
    out = []
    for p_start, p_end in _paragraphs(text, wrapped):
        paragraph = _joined(text, p_start, p_end, unsegmented)
        if options.unit == "sentence":
            pieces = split_sentences(paragraph.text)
        else:
            stripped = paragraph.text.strip()
            pieces = [(len(paragraph.text) - len(paragraph.text.lstrip()), stripped)]
        out += [_Unit(paragraph.positions[s : s + len(piece)], piece) for s, piece in pieces]
    return out


# --- phase 5: records ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Placed:
    type: str
    start: int
    end: int
    line: int


def _document(
    ann: Path, schema: Schema, report: ReadReport, options: BratOptions, skip_bad: bool = False
) -> list[Sentence]:
    builder = SentenceBuilder(schema, str(ann))
    found = parse_annotations(ann, builder, report, skip_bad)
    for kind, n in found.skipped.items():
        report.counts[f"{kind} lines skipped"] += n
    text = choose_reading(_read(ann.with_suffix(".txt")), found.textbounds, report)
    placed: dict[str, _Placed] = {}
    for bound in found.textbounds:
        try:
            span = ground(text, bound, builder, report)
        except DataError as err:
            _skip_or_raise(err, skip_bad, report)
            continue
        if span:
            placed[bound.ident] = _Placed(bound.type, *span, bound.line)
    records = _records(units(text, options, report), placed, found, builder, report, skip_bad)
    report.counts["documents"] += 1
    report.counts["sentences"] += len(records)
    return records


def _records(
    pieces: list[_Unit],
    placed: dict[str, _Placed],
    found: _Annotations,
    builder: SentenceBuilder,
    report: ReadReport,
    skip_bad: bool = False,
) -> list[Sentence]:
    """Entities into the unit holding them (one entity per type and span), then relations
    between entities of one unit; every loss counted."""
    at = {pos: (u, i) for u, unit in enumerate(pieces) for i, pos in enumerate(unit.positions)}
    entities: list[dict[tuple[str, int, int], int]] = [{} for _ in pieces]
    where: dict[str, tuple[int, int]] = {}  # entity id -> (unit, entity index)
    for ident, m in sorted(placed.items(), key=lambda kv: (kv[1].start, kv[1].end)):
        first, last = at.get(m.start), at.get(m.end - 1)
        if first is None or last is None or first[0] != last[0]:
            report.lose("entity_across_units", f"{builder.source}:{m.line}: {ident} crosses a sentence end")
            continue
        index = entities[first[0]]
        key = (m.type, first[1], last[1] + 1)
        if key in index:
            report.counts["duplicate entities merged"] += 1
        where[ident] = (first[0], index.setdefault(key, len(index)))
    relations: list[dict[tuple[str, int, int], None]] = [{} for _ in pieces]
    defined = {b.ident for b in found.textbounds}
    for rel in found.relations:
        try:
            kept = _relation(rel, where, defined, builder, report)
        except DataError as err:
            _skip_or_raise(err, skip_bad, report)
            continue
        if kept:
            unit, triple = kept
            if triple in relations[unit]:
                report.counts["duplicate relations merged"] += 1
            relations[unit][triple] = None
    return [
        Sentence(
            f"{Path(builder.source).stem}:{unit.positions[0]}",
            unit.text,
            tuple(Entity(t, unit.text[s:e], s, e) for t, s, e in entities[u]),
            tuple(Relation(t, h, tl) for t, h, tl in relations[u]),
        )
        for u, unit in enumerate(pieces)
    ]


def _relation(
    rel: _RelationLine,
    where: dict[str, tuple[int, int]],
    defined: set[str],
    builder: SentenceBuilder,
    report: ReadReport,
) -> tuple[int, tuple[str, int, int]] | None:
    here = f"{builder.source}:{rel.line}"
    skipped = builder.skipped_relation_type(rel.type)
    if skipped:
        report.lose("type_skipped", f"{here}: {rel.ident} is a {skipped} relation", skipped)
        return None
    rel_type = builder.relation_type(rel.type, f"line {rel.line}")
    for arg in (rel.arg1, rel.arg2):
        if arg not in defined:
            raise builder.fail(f"line {rel.line}", f"{rel.ident} names {arg}, which no T line defines")
    if rel.arg1 not in where or rel.arg2 not in where:
        missing = rel.arg1 if rel.arg1 not in where else rel.arg2
        report.lose("argument_lost", f"{here}: argument {missing} is not a kept entity", rel_type)
        return None
    (unit_a, head), (unit_b, tail) = where[rel.arg1], where[rel.arg2]
    if unit_a != unit_b:
        joins = f"{rel_type} joins {rel.arg1} and {rel.arg2} across sentences"
        report.lose("cross_sentence", f"{here}: {joins}", rel_type)
        return None
    if head == tail:
        raise builder.fail(f"line {rel.line}", f"{rel.ident} joins {rel.arg1} and {rel.arg2}, one entity")
    return unit_a, (rel_type, head, tail)
