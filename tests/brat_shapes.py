"""brat corpora in the shapes people have them, written from the shared corpora's records:
running text in paragraphs, hard-wrapped at a width, CRLF line ends, a byte-order mark, entities
across a wrap written as fragments, and stray relations of a type that joins two sentences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slcolm_dspy.core.records import Sentence


@dataclass
class Shape:
    per_paragraph: int = 4  # sentences per paragraph; paragraphs are separated by a blank line
    joiner: str = ""  # between sentences of a paragraph ("" for Chinese, " " for English)
    wrap: int | None = None  # hard-wrap width; Chinese breaks anywhere, English at a space
    crlf: bool = False
    bom: bool = False
    # one relation of this type from each paragraph's first sentence to its second
    stray_type: str | None = None


@dataclass
class Written:
    """What the writer put in the files, to compare a reader's records with."""

    # (type, head text, tail text) of each relation written, the stray ones included
    triples: list[tuple[str, str, str]] = field(default_factory=list)
    stray: int = 0
    fragments: int = 0


def _logical_text(records: Sequence[Sentence], shape: Shape) -> tuple[str, list[int]]:
    """The document before wrapping, and each record's offset in it."""
    parts, starts, pos = [], [], 0
    for i, record in enumerate(records):
        if i and i % shape.per_paragraph == 0:
            parts.append("\n\n")
            pos += 2
        elif i:
            parts.append(shape.joiner)
            pos += len(shape.joiner)
        starts.append(pos)
        parts.append(record.text)
        pos += len(record.text)
    return "".join(parts), starts


def _wrap(text: str, shape: Shape) -> tuple[str, list[int]]:
    """The wrapped text and where each logical character landed in it."""
    where: list[int] = []
    out: list[str] = []
    line_start = 0
    for char in text:
        if char != "\n" and shape.wrap and len(out) - line_start >= shape.wrap:
            if shape.joiner:  # words: the break replaces the last space of the line
                cut = next((k for k in range(len(out) - 1, line_start, -1) if out[k] == " "), None)
                if cut is not None:
                    out[cut] = "\n"
                    line_start = cut + 1
            else:
                out.append("\n")
                line_start = len(out)
        where.append(len(out))
        out.append(char)
        if char == "\n":
            line_start = len(out)
    wrapped = "".join(out)
    if shape.crlf:
        moved, shift = [], 0
        for char in wrapped:
            moved.append(shift)
            shift += 2 if char == "\n" else 1
        where = [moved[w] for w in where]
        wrapped = wrapped.replace("\n", "\r\n")
    if shape.bom:
        where = [w + 1 for w in where]
        wrapped = "\ufeff" + wrapped
    return wrapped, where


def _fragments(doc: str, where: list[int], start: int, end: int) -> list[tuple[int, int]]:
    """The runs of document positions an entity's characters landed on (split by a wrap)."""
    runs: list[list[int]] = []
    previous = None
    for i in range(start, end):
        pos = where[i]
        if doc[pos] in "\r\n":
            previous = None
            continue
        if previous is not None and pos == previous + 1:
            runs[-1][1] = pos + 1
        else:
            runs.append([pos, pos + 1])
        previous = pos
    return [(a, b) for a, b in runs]


def write_brat(records: Sequence[Sentence], folder: Path, name: str, shape: Shape) -> Written:
    logical, starts = _logical_text(records, shape)
    doc, where = _wrap(logical, shape)
    lines, written, ids = [], Written(), 0
    first_entity: dict[int, str] = {}
    names_of: dict[int, list[str]] = {}
    for r_index, (record, offset) in enumerate(zip(records, starts, strict=True)):
        names = []
        for entity in record.entities:
            ids += 1
            pieces = _fragments(doc, where, offset + entity.start, offset + entity.end)
            written.fragments += len(pieces) > 1
            spans = ";".join(f"{a} {b}" for a, b in pieces)
            text = " ".join(doc[a:b] for a, b in pieces)
            lines.append(f"T{ids}\t{entity.type} {spans}\t{text}")
            names.append(f"T{ids}")
        names_of[id(record)] = names
        if names:
            first_entity[r_index] = names[0]
        seen = set()
        for relation, triple in zip(record.relations, record.triples(), strict=True):
            head, tail = names[relation.head], names[relation.tail]
            lines.append(f"R{len(lines)}\t{relation.type} Arg1:{head} Arg2:{tail}")
            if (relation.type, head, tail) not in seen:  # a repeated line is one relation
                written.triples.append(triple)
            seen.add((relation.type, head, tail))
    texts = {n: e.text for r in records for n, e in zip(names_of[id(r)], r.entities, strict=True)}
    if shape.stray_type:
        for first in range(0, len(records) - 1, shape.per_paragraph):
            # only where the first sentence ends with a sentence mark: a reader then cuts there
            ends = records[first].text.rstrip("」』”’）)\"'").endswith(("。", "！", "？", ".", "!", "?"))
            if ends and first in first_entity and first + 1 in first_entity:
                head, tail = first_entity[first], first_entity[first + 1]
                lines.append(f"R{len(lines)}\t{shape.stray_type} Arg1:{head} Arg2:{tail}")
                written.triples.append((shape.stray_type, texts[head], texts[tail]))
                written.stray += 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_bytes(doc.encode("utf-8"))
    newline = "\r\n" if shape.crlf else "\n"
    (folder / f"{name}.ann").write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return written
