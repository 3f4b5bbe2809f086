"""Ground an LLM's answer in the sentence: every entity and triple gets character offsets.

Strings are looked up in every form of the text (traditional and simplified are aligned
character by character, so an offset found in one holds in all). A string found nowhere is a
hallucination and is dropped; a relation name outside the inventory is mapped by the schema's
normalisation or dropped. Everything dropped or mapped is counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.core.schema import Schema


@dataclass
class GroundingStats:
    counts: Counter[str] = field(default_factory=Counter)


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


class Grounder:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.inventory = set(schema.relation_types)

    def _clean(self, text: Any) -> str:
        if not isinstance(text, str):
            return ""
        text = text.strip().strip("「」“”\"'《》")
        for word in self.schema.paper.strip_words:  # "人物曹操" -> "曹操"
            if text.startswith(word) and len(text) > len(word):
                text = text[len(word) :]
        return text

    def _locate(
        self, sentence: Sentence, text: str, preferred: dict[str, tuple[int, int]]
    ) -> tuple[int, int] | None:
        if not text:
            return None
        if text in preferred:
            return preferred[text]
        for form_text in (sentence.text, *sentence.variants.values()):
            at = form_text.find(text)
            if at >= 0:
                return at, at + len(text)
        return None

    def relation_type(self, raw: Any, stats: GroundingStats) -> str | None:
        if not isinstance(raw, str):
            stats.counts["relation_type_missing"] += 1
            return None
        name = self.schema.relation_code(self.schema.normalise_relation(raw.strip()))
        if name is not None:
            if name != raw.strip():
                stats.counts["relation_type_mapped"] += 1
            return name
        stats.counts["relation_type_unknown"] += 1
        return None

    def ground(
        self, sentence: Sentence, slm: Sentence | None, mentions: Iterable[Any], triples: Iterable[Any]
    ) -> tuple[Sentence, GroundingStats]:
        stats = GroundingStats()
        # Where a string occurs several times, the occurrence the SLM recognised wins.
        preferred: dict[str, tuple[int, int]] = {}
        slm_types: dict[tuple[int, int], str | None] = {}
        if slm is not None:
            for ent in slm.entities:
                if ent.grounded:
                    span = (ent.start or 0, ent.end or 0)
                    slm_types.setdefault(span, ent.type)
                    for form_text in (sentence.text, *sentence.variants.values()):
                        preferred.setdefault(form_text[span[0] : span[1]], span)
        llm_types: dict[tuple[int, int], str] = {}
        entities: list[Entity] = []
        index: dict[tuple[int, int], int] = {}

        def entity_at(span: tuple[int, int]) -> int:
            if span not in index:
                etype = slm_types.get(span) or llm_types.get(span)
                index[span] = len(entities)
                entities.append(Entity(etype, sentence.text[span[0] : span[1]], span[0], span[1]))
            return index[span]

        for mention in mentions or ():
            stats.counts["entities_in"] += 1
            span = self._locate(sentence, self._clean(_field(mention, "text")), preferred)
            if span is None:
                stats.counts["entities_not_in_sentence"] += 1
                continue
            raw_type = str(_field(mention, "type") or "")
            code = self.schema.entity_code(raw_type)
            if code:
                if code != raw_type:
                    stats.counts["entity_type_mapped"] += 1
                llm_types.setdefault(span, code)
            else:
                stats.counts["entity_type_unknown"] += 1
            entity_at(span)
        relations: list[Relation] = []
        seen: set[tuple[str, int, int]] = set()
        for triple in triples or ():
            stats.counts["triples_in"] += 1
            rel_type = self.relation_type(_field(triple, "relation"), stats)
            head = self._locate(sentence, self._clean(_field(triple, "head")), preferred)
            tail = self._locate(sentence, self._clean(_field(triple, "tail")), preferred)
            if rel_type is None:
                continue
            if head is None or tail is None:
                stats.counts["triples_not_in_sentence"] += 1
                continue
            if head == tail:
                stats.counts["triples_self_loop"] += 1
                continue
            key = (rel_type, entity_at(head), entity_at(tail))
            if key in seen:
                stats.counts["triples_duplicate"] += 1
                continue
            seen.add(key)
            relations.append(Relation(*key))
            stats.counts["triples_kept"] += 1
        # an entity named only inside a triple, or with a type outside the schema, stays untyped
        stats.counts["entities_untyped"] += sum(e.type is None for e in entities)
        return sentence.with_predictions(entities, relations), stats
