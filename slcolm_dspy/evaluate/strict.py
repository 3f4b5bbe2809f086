"""The strict protocol: offset-level triples with entity types checked.

A relation is (type, head span, tail span) where a span is (start, end, entity type); a
prediction is right only if all of it matches. Direction-insensitive types compare their two
spans as an unordered pair, since the schema says their annotated direction carries no meaning.
Every predicted triple counts, whatever its type.
"""

from __future__ import annotations

from collections.abc import Iterable

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.evaluate.metrics import Counts

Span = tuple[int, int, str | None]
Triple = tuple[str, Span, Span]


def _require_grounded(sentence: Sentence, role: str) -> None:
    if any(not e.grounded for e in sentence.entities):
        raise SlcolmError(
            f"{role} sentence {sentence.id!r} has entities without offsets; "
            "the strict protocol needs them (use --protocol paper)"
        )


def triples(sentence: Sentence, schema: Schema, role: str) -> set[Triple]:
    _require_grounded(sentence, role)
    out: set[Triple] = set()
    for rel in sentence.relations:
        h, t = sentence.entities[rel.head], sentence.entities[rel.tail]
        a: Span = (h.start or 0, h.end or 0, h.type)
        b: Span = (t.start or 0, t.end or 0, t.type)
        if rel.type in schema.direction_insensitive and (b[0], b[1]) < (a[0], a[1]):
            a, b = b, a
        out.add((rel.type, a, b))
    return out


def count_relations(gold: Sentence, predicted: Sentence, schema: Schema) -> dict[str, Counts]:
    g = triples(gold, schema, "gold")
    p = triples(predicted, schema, "predicted")
    counts: dict[str, Counts] = {}
    for triple in g:
        counts.setdefault(triple[0], Counts()).gold += 1
    for triple in p:
        counts.setdefault(triple[0], Counts()).predicted += 1
    for triple in g & p:
        counts[triple[0]].correct += 1
    return counts


def entity_spans(sentence: Sentence, role: str) -> Iterable[Span]:
    _require_grounded(sentence, role)
    return {(e.start or 0, e.end or 0, e.type) for e in sentence.entities}


def count_entities(gold: Sentence, predicted: Sentence) -> dict[str, Counts]:
    g = set(entity_spans(gold, "gold"))
    p = set(entity_spans(predicted, "predicted"))
    counts: dict[str, Counts] = {}
    for span in g:
        counts.setdefault(str(span[2]), Counts()).gold += 1
    for span in p:
        counts.setdefault(str(span[2]), Counts()).predicted += 1
    for span in g & p:
        counts[str(span[2])].correct += 1
    return counts
