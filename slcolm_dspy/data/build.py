"""Turn raw entity/relation entries into a validated `Sentence`, whatever file they came from.

Every reader funnels through `SentenceBuilder`, so every format gets the same checks and the
same one-line errors: a missing key, an offset outside the text, a span that does not match
its offsets, a relation index out of range, an unknown type.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slcolm_dspy.core.errors import DataError
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.core.schema import Schema

# Why an annotation did not become part of a record: the keys of ReadReport.losses.
LOSS_CAUSES = {
    "discontinuous": "discontinuous entities (a gap that is not a line break or a space)",
    "offset": "entities whose offsets and text disagree, with no exact match nearby",
    "entity_across_units": "entities across a sentence end",
    "cross_sentence": "relations across sentences (--unit paragraph keeps those within a paragraph)",
    "argument_lost": "relations whose argument was lost",
    "type_skipped": "relations of a type the schema skips ([relations] skip)",
}


@dataclass
class ReadReport:
    """What a reader did besides returning records: skipped bad records, repaired labels."""

    source: str
    skipped: list[DataError] = field(default_factory=list)
    label_fixes: Counter[str] = field(default_factory=Counter)
    dropped_empty: int = 0
    # cause -> each annotation not taken for it, as "file:line: what" (LOSS_CAUSES)
    cases: dict[str, list[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)  # what a document reader did (brat)
    # (relation type, cause) of every relation not taken: a draft schema lists these types too
    lost_relations: Counter[tuple[str, str]] = field(default_factory=Counter)

    def lose(self, cause: str, problem: str, relation_type: str | None = None) -> None:
        """Record an annotation that did not become part of a record: why, and where it was."""
        self.cases.setdefault(cause, []).append(problem)
        if relation_type is not None:
            self.lost_relations[relation_type, cause] += 1

    @property
    def losses(self) -> Counter[str]:
        """Annotations not taken, by cause."""
        return Counter({cause: len(found) for cause, found in self.cases.items()})

    @property
    def problems(self) -> list[str]:
        """Every annotation not taken, "file:line: what", cause by cause."""
        return [problem for found in self.cases.values() for problem in found]


class SentenceBuilder:
    def __init__(self, schema: Schema, source: str, *, label_fixes: Mapping[str, str] | None = None):
        self.schema = schema
        self.source = source
        self.label_fixes = dict(label_fixes or {})
        self.report = ReadReport(source)
        self._inventory = set(schema.relation_types)
        # the generic format's readers count entities and relations written twice (a user's own
        # data; the published corpus files are read as published)
        self.count_repeats = False

    def fail(self, record: str | int, problem: str) -> DataError:
        return DataError(self.source, problem, record)

    def skipped_relation_type(self, raw: Any) -> str | None:
        """The schema's name for `raw` when the schema skips that type ([relations] skip)."""
        if not isinstance(raw, str) or not self.schema.skip_relation_types:
            return None
        name = self.schema.normalise_relation(raw)
        return name if name in self.schema.skip_relation_types else None

    def relation_type(self, raw: Any, record: str | int) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise self.fail(record, f"relation type must be a non-empty string, got {raw!r}")
        name = self.schema.normalise_relation(raw)
        if self.schema.open_types:
            return name
        name = self.schema.relation_code(name) or name
        if name in self.label_fixes:
            self.report.label_fixes[name] += 1
            name = self.label_fixes[name]
        if name not in self._inventory:
            raise self.fail(record, f"unknown relation type {raw!r}")
        return name

    def entity_type(self, raw: Any, record: str | int) -> str:
        if self.schema.open_types and isinstance(raw, str) and raw.strip():
            return raw.strip()
        code = self.schema.entity_code(raw) if isinstance(raw, str) else None
        if code is None:
            raise self.fail(record, f"unknown entity type {raw!r}")
        return code

    def grounded_entity(
        self,
        raw: Any,
        text: str,
        record: str | int,
        index: int,
        *,
        start_keys: tuple[str, ...] = ("start",),
        span_keys: tuple[str, ...] = ("text", "span"),
        span_must_match: bool = True,
        allow_ungrounded: bool = False,
        forms: tuple[str, ...] = (),
    ) -> Entity:
        """An entity with offsets into `text`; its span must equal text[start:end].

        With `allow_ungrounded`, an entity with neither offset is kept by its text alone (sources
        that name strings without positions).
        """
        where = f"entity {index}"
        if not isinstance(raw, Mapping):
            raise self.fail(record, f"{where} is not an object")
        if allow_ungrounded and "end" not in raw and not any(k in raw for k in start_keys):
            return self._ungrounded_entity(raw, record, where, forms or (text,))
        start = next((raw[k] for k in start_keys if k in raw), None)
        if start is None:
            raise self.fail(record, f"{where} has no {'/'.join(start_keys)} offset")
        if "end" not in raw:
            raise self.fail(record, f"{where} has no end offset")
        end = raw["end"]
        if not _is_int(start) or not _is_int(end):
            raise self.fail(record, f"{where} offsets must be integers, got {start!r}..{end!r}")
        if not 0 <= start < end <= len(text):
            raise self.fail(
                record, f"{where} offsets {start}..{end} out of range for a {len(text)}-char text"
            )
        if "type" not in raw:
            raise self.fail(record, f"{where} has no type")
        span = next((raw[k] for k in span_keys if k in raw), None)
        actual = text[start:end]
        if span is not None:
            if not isinstance(span, str):
                raise self.fail(record, f"{where} span must be a string, got {span!r}")
            mismatch = span != actual if span_must_match else len(span) != len(actual)
            if mismatch:
                raise self.fail(
                    record,
                    f"{where} span {span!r} does not match text[{start}:{end}] = {actual!r}"
                    + _normalisation_hint(span, actual),
                )
        return Entity(
            # null: an entity the LLM named only inside a triple (predictions keep it untyped)
            type=None if raw["type"] is None else self.entity_type(raw["type"], record),
            text=actual,
            start=start,
            end=end,
            confidence=self._confidence(raw, record, where),
        )

    def _ungrounded_entity(
        self, raw: Mapping[str, Any], record: str | int, where: str, forms: tuple[str, ...]
    ) -> Entity:
        text = raw.get("text")
        if not isinstance(text, str):
            raise self.fail(record, f"{where} has neither offsets nor a text")
        self.checked_text(text, record, f"{where} text")
        if not any(text in form for form in forms):
            raise self.fail(record, f"{where} text {text!r} has no offsets and is not in the sentence")
        etype = raw.get("type")
        return Entity(
            type=None if etype is None else self.entity_type(etype, record),
            text=text,
            confidence=self._confidence(raw, record, where),
        )

    def _confidence(self, raw: Mapping[str, Any], record: str | int, where: str) -> float | None:
        return self.score(raw.get("confidence"), record, f"{where} confidence")

    def score(self, value: Any, record: str | int, what: str) -> float | None:
        """A confidence or probability: absent, or a finite number in [0, 1]."""
        if value is None:
            return None
        if not _is_number(value):
            raise self.fail(record, f"{what} must be a number, got {value!r}")
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise self.fail(record, f"{what} must lie in [0, 1], got {value!r}")
        return float(value)

    def checked_text(self, value: str, record: str | int, what: str) -> str:
        """Text that can be written back as UTF-8: JSON's \\ud800 escapes make strings that cannot."""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise self.fail(record, f"{what} holds an unpaired surrogate at character {exc.start}") from None
        return value

    def relation(
        self, raw: Any, n_entities: int, record: str | int, index: int, *, grounded: bool = True
    ) -> Relation:
        """A relation by entity index. Between grounded entities a head equal to its tail is an
        error; recorded outputs that name entities by string alone (the replay pack) may relate
        two mentions of one string, which collapse into one entity, so there it is kept."""
        where = f"relation {index}"
        if not isinstance(raw, Mapping):
            raise self.fail(record, f"{where} is not an object")
        for key in ("type", "head", "tail"):
            if key not in raw:
                raise self.fail(record, f"{where} has no {key}")
        head, tail = raw["head"], raw["tail"]
        for name, value in (("head", head), ("tail", tail)):
            if not _is_int(value) or not 0 <= value < n_entities:
                raise self.fail(
                    record,
                    f"{where} {name} index {value!r} out of range ({n_entities} entities)",
                )
        if head == tail and grounded:
            raise self.fail(record, f"{where} joins entity {head} with itself")
        return Relation(
            type=self.relation_type(raw["type"], record),
            head=head,
            tail=tail,
            probability=self.score(raw.get("probability"), record, f"{where} probability"),
        )

    def sentence(
        self,
        *,
        sid: str,
        text: Any,
        entities: Any,
        relations: Any,
        record: str | int,
        variants: Mapping[str, str] | None = None,
        **entity_options: Any,
    ) -> Sentence:
        if not isinstance(text, str) or not text.strip():
            raise self.fail(record, "text must be a string with more than white space")
        self.checked_text(text, record, "text")
        for name, form in (variants or {}).items():
            self.checked_text(form, record, f"variant {name!r}")
        if not isinstance(entities, list):
            raise self.fail(record, "'entities' must be a list")
        if not isinstance(relations, list):
            raise self.fail(record, "'relations' must be a list")
        forms = (text, *(variants or {}).values())
        ents = tuple(
            self.grounded_entity(e, text, record, i, forms=forms, **entity_options)
            for i, e in enumerate(entities)
        )
        relations = self._without_skipped_types(relations, record)
        rels = tuple(
            self.relation(r, len(ents), record, i, grounded=_both_grounded(r, ents))
            for i, r in enumerate(relations)
        )
        for i, raw in enumerate(relations):
            for key, idx in (("head_span", rels[i].head), ("tail_span", rels[i].tail)):
                # Redundant span copies in the corpus must agree with the entity they name.
                if key in raw and raw[key] != entities[idx].get("span", ents[idx].text):
                    raise self.fail(record, f"relation {i} {key} {raw[key]!r} != entity {idx}")
        if self.count_repeats:
            self._count_repeats(ents, rels)
        return Sentence(sid, text, ents, rels, dict(variants or {}))

    def _without_skipped_types(self, relations: list[Any], record: str | int) -> list[Any]:
        """The relations minus those of a type the schema skips (each counted as a loss)."""
        kept = []
        for i, raw in enumerate(relations):
            skipped = self.skipped_relation_type(raw.get("type")) if isinstance(raw, Mapping) else None
            if skipped:
                where = f"{self.source}: record {record}: relation {i}"
                self.report.lose("type_skipped", f"{where} is a {skipped} relation", skipped)
            else:
                kept.append(raw)
        return kept

    def _count_repeats(self, entities: tuple[Entity, ...], relations: tuple[Relation, ...]) -> None:
        """Count an entity (type and offsets) or a relation (type, head, tail) written twice.
        They are kept as written: the paper protocol counts every gold occurrence, and the
        published corpus has such repeats; the reader's report says how many there were."""
        spans = [(e.type, e.start, e.end) for e in entities if e.grounded]
        triples = [(r.type, r.head, r.tail) for r in relations]
        self.report.counts["repeated entities (kept as written)"] += len(spans) - len(set(spans))
        self.report.counts["repeated relations (kept as written)"] += len(triples) - len(set(triples))


def _normalisation_hint(a: str, b: str) -> str:
    """Two strings that print alike but differ in Unicode normalisation (NFC vs NFD): say so."""
    if a != b and unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
        return " (they differ only in Unicode normalisation: NFC vs NFD; normalise the file to NFC)"
    return ""


def _both_grounded(raw: Any, entities: tuple[Entity, ...]) -> bool:
    """Whether a raw relation's arguments are entities with offsets (unknown: treated as grounded)."""
    if not isinstance(raw, Mapping):
        return True
    ends = [raw.get("head"), raw.get("tail")]
    if not all(_is_int(i) and 0 <= i < len(entities) for i in ends):
        return True  # the relation check names the bad index
    return all(entities[i].grounded for i in ends)  # type: ignore[index]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
