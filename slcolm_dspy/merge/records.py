"""Merge an LLM record and an SLM record of the same sentence with one of the table modes."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.merge.modes import MergeMode, merge_tables

EntityKey = tuple[Any, ...]


def entity_key(entity: Entity) -> EntityKey:
    """Grounded entities are the same when span and type are; ungrounded ones when text and type are."""
    if entity.grounded:
        return (entity.start, entity.end, entity.type)
    return (None, entity.text, entity.type)


def _table(
    sentence: Sentence, threshold: float | None = None
) -> tuple[dict[str, list[tuple[EntityKey, EntityKey]]], dict]:
    table: dict[str, list[tuple[EntityKey, EntityKey]]] = {}
    probs: dict[tuple[str, EntityKey, EntityKey], float | None] = {}
    for rel in sentence.relations:
        if threshold is not None and (rel.probability is None or rel.probability <= threshold):
            continue
        item = (entity_key(sentence.entities[rel.head]), entity_key(sentence.entities[rel.tail]))
        table.setdefault(rel.type, []).append(item)
        probs.setdefault((rel.type, *item), rel.probability)
    return table, probs


def merge_records(
    llm: Sentence,
    slm: Sentence,
    mode: MergeMode,
    *,
    llm_types: Collection[str] = (),
    threshold: float | None = None,
) -> Sentence:
    """The merged record: entities of both (LLM first), relations chosen by `mode`.

    `llm_types` is W for modes 3 and 3-clean; `threshold` keeps only SLM relations with
    probability above it (mode 2).
    """
    llm_table, llm_probs = _table(llm)
    slm_table, slm_probs = _table(slm, threshold if mode == "2" else None)
    merged = merge_tables(llm_table, slm_table, mode, llm_types)
    entities: list[Entity] = []
    index: dict[EntityKey, int] = {}
    for ent in (*llm.entities, *slm.entities):
        key = entity_key(ent)
        if key not in index:
            index[key] = len(entities)
            entities.append(ent)
    relations = []
    seen = set()
    for rel_type, items in merged.items():
        for head, tail in items:
            if (rel_type, head, tail) in seen:
                continue
            seen.add((rel_type, head, tail))
            prob = slm_probs.get((rel_type, head, tail), llm_probs.get((rel_type, head, tail)))
            relations.append(Relation(rel_type, index[head], index[tail], prob))
    return llm.with_predictions(entities, relations)
