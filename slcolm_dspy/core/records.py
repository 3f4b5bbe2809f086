"""The one record type that flows through data -> slm -> guide -> merge -> evaluate.

A `Sentence` holds its text, the entities found in it and the relations between them.
Entities carry character offsets (end exclusive) when they are grounded in the text;
recorded outputs that only name strings (the replay pack) leave them `None`.
`variants` holds other forms of the same text aligned character by character (for
ChisRE: the simplified form of the traditional text), so one set of offsets serves all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Entity:
    """A mention: its type code (None when a source does not say), text and offsets."""

    type: str | None
    text: str
    start: int | None = None
    end: int | None = None
    confidence: float | None = None

    @property
    def grounded(self) -> bool:
        return self.start is not None and self.end is not None


@dataclass(frozen=True, slots=True)
class Relation:
    """A typed, directed relation between two entities of the same sentence, by index."""

    type: str
    head: int
    tail: int
    probability: float | None = None


@dataclass(frozen=True, slots=True)
class Sentence:
    id: str
    text: str
    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    variants: Mapping[str, str] = field(default_factory=dict)

    def form(self, name: str | None) -> str:
        """The text in form `name` (a variant), or the primary text when it has no such form."""
        if name is None:
            return self.text
        return self.variants.get(name, self.text)

    def span(self, entity: Entity, form: str | None = None) -> str:
        """The entity's string in the given form; ungrounded entities keep their own text."""
        if not entity.grounded or form is None or form not in self.variants:
            return entity.text
        return self.variants[form][entity.start : entity.end]

    def triples(self, form: str | None = None) -> list[tuple[str, str, str]]:
        """(type, head string, tail string) for every relation, in order."""
        return [
            (
                rel.type,
                self.span(self.entities[rel.head], form),
                self.span(self.entities[rel.tail], form),
            )
            for rel in self.relations
        ]

    def with_predictions(self, entities: Iterable[Entity], relations: Iterable[Relation]) -> Sentence:
        """The same sentence (id, text, variants) with other entities and relations."""
        return replace(self, entities=tuple(entities), relations=tuple(relations))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text}
        if self.variants:
            out["variants"] = dict(self.variants)
        out["entities"] = [_entity_json(e) for e in self.entities]
        out["relations"] = [_relation_json(r) for r in self.relations]
        return out


def relation_type_counts(records: Iterable[Sentence]) -> Counter[str]:
    """How many relations of each type `records` hold (a split's train counts: head/tail, the
    long-tail chart, the per-type policies)."""
    return Counter(rel.type for record in records for rel in record.relations)


def _entity_json(entity: Entity) -> dict[str, Any]:
    out: dict[str, Any] = {"type": entity.type, "text": entity.text}
    if entity.grounded:
        out["start"] = entity.start
        out["end"] = entity.end
    if entity.confidence is not None:
        out["confidence"] = entity.confidence
    return out


def _relation_json(relation: Relation) -> dict[str, Any]:
    out: dict[str, Any] = {"type": relation.type, "head": relation.head, "tail": relation.tail}
    if relation.probability is not None:
        out["probability"] = relation.probability
    return out
