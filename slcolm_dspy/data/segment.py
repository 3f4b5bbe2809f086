"""Documents of any length -> units the models can read, and the units' predictions -> one
document record with offsets into the document.

Sentence punctuation cuts where the text has it (`split_sentences`). A stretch without it longer
than `max_chars` (unpunctuated classical text, a table, a list) is cut into overlapping windows.
Every unit owns the middle of its span: the first window from the start, each later one from the
middle of its overlap with the previous window. A prediction is kept from the unit that owns its
start, so an entity near a window edge is taken from the window where it has the most context,
and one found twice (in two overlapping windows) is kept once; a relation is kept from any unit
that saw both its entities. Nothing is cut away: every
character of the document lies in some unit, and `Segmentation.covered` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.data.text import split_sentences


@dataclass(frozen=True)
class Unit:
    """One readable piece of a document: `text` is document[start : start + len(text)]."""

    id: str
    start: int
    text: str
    owned_from: int  # document offsets this unit owns predictions for: [owned_from, owned_to)
    owned_to: int
    window: bool  # cut by length (no sentence punctuation there), not at a sentence end

    def record(self) -> Sentence:
        return Sentence(self.id, self.text)


@dataclass(frozen=True)
class Segmentation:
    document: Sentence
    units: list[Unit]

    @property
    def windows(self) -> int:
        """Units cut by length: where the document had no sentence punctuation."""
        return sum(u.window for u in self.units)

    def covered(self) -> bool:
        """Every non-space character of the document lies in some unit."""
        text = self.document.text
        seen = [False] * len(text)
        for u in self.units:
            seen[u.start : u.start + len(u.text)] = [True] * len(u.text)
        return all(seen[i] or text[i].isspace() for i in range(len(text)))


def _windows(text: str, offset: int, max_chars: int, overlap: int) -> list[tuple[int, str, int, int]]:
    """(start, text, owned_from, owned_to) of overlapping windows over one long stretch."""
    if len(text) <= max_chars:
        return [(offset, text, offset, offset + len(text))]
    stride = max_chars - overlap
    starts = list(range(0, len(text) - overlap, stride))
    out = []
    for i, lo in enumerate(starts):
        hi = min(len(text), lo + max_chars)
        owned_from = lo if i == 0 else lo + overlap // 2
        owned_to = hi if i == len(starts) - 1 else starts[i + 1] + overlap // 2
        out.append((offset + lo, text[lo:hi], offset + owned_from, offset + owned_to))
    return out


def segment(document: Sentence, *, max_chars: int = 400, overlap: int = 100) -> Segmentation:
    """Cut `document` at sentence punctuation and line breaks, then cut longer stretches into
    windows of `max_chars` characters overlapping by `overlap`."""
    if max_chars < 2 or not 0 <= overlap <= max_chars // 2:
        raise SlcolmError(f"segment: overlap {overlap} must be at most half of max_chars {max_chars}")
    units: list[Unit] = []
    line_start = 0
    for line in document.text.split("\n"):
        for start, sentence in split_sentences(line):
            long = len(sentence) > max_chars
            for lo, text, owned_from, owned_to in _windows(sentence, line_start + start, max_chars, overlap):
                unit_id = f"{document.id}#{len(units) + 1}"
                units.append(Unit(unit_id, lo, text, owned_from, owned_to, long))
        line_start += len(line) + 1
    return Segmentation(document, units)


def stitch(segmentation: Segmentation, predicted: Sequence[Sentence]) -> Sentence:
    """The document record from one prediction per unit (in unit order): entities and relations
    with document offsets. An entity is kept once, from the unit that owns its start; a relation
    from any unit that saw both of its entities."""
    units = segmentation.units
    if len(predicted) != len(units):
        raise SlcolmError(f"stitch: {len(predicted)} predictions for {len(units)} units")
    entities: list[Entity] = []
    index: dict[tuple[int, int, str | None], int] = {}

    def placed(unit: Unit, e: Entity) -> tuple[int, int, str | None] | None:
        if e.start is None or e.end is None:
            return None
        return (unit.start + e.start, unit.start + e.end, e.type)

    # first the entities, each from the unit that owns its start ...
    for unit, record in zip(units, predicted, strict=True):
        for e in record.entities:
            key = placed(unit, e)
            if key and key not in index and unit.owned_from <= key[0] < unit.owned_to:
                index[key] = len(entities)
                entities.append(Entity(e.type, e.text, key[0], key[1], e.confidence))
    # ... then the relations between kept entities, from whichever unit saw both (kept once)
    relations: dict[tuple[str, int, int], Relation] = {}
    for unit, record in zip(units, predicted, strict=True):
        local = {i: index.get(key) for i, e in enumerate(record.entities) if (key := placed(unit, e))}
        for r in record.relations:
            head, tail = local.get(r.head), local.get(r.tail)
            if head is not None and tail is not None:
                relations.setdefault((r.type, head, tail), Relation(r.type, head, tail, r.probability))
    return segmentation.document.with_predictions(entities, relations.values())
