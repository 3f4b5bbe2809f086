"""Corpus statistics: per-split counts and the relation frequency table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from slcolm_dspy.core.records import Sentence, relation_type_counts
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.data.build import ReadReport


def split_stats(records: Sequence[Sentence], report: ReadReport | None = None) -> dict[str, Any]:
    entity_types = Counter(e.type for r in records for e in r.entities)
    relation_types = relation_type_counts(records)
    out: dict[str, Any] = {
        "sentences": len(records),
        "chars": sum(len(r.text) for r in records),
        "entities": sum(entity_types.values()),
        "entity_types": dict(entity_types.most_common()),
        "relations": sum(relation_types.values()),
        "relation_types": len(relation_types),
        "relation_counts": dict(relation_types),
        "with_variant": sum(1 for r in records if r.variants),
    }
    if report is not None:
        out["dropped_empty"] = report.dropped_empty
        out["label_fixes"] = dict(report.label_fixes)
        out["skipped"] = len(report.skipped)
    return out


def relation_table(schema: Schema, splits: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per inventory type: head/tail and its count in every split."""
    head = set(schema.head_types)
    return [
        {
            "type": t,
            "group": "head" if t in head else "tail",
            **{name: stats["relation_counts"].get(t, 0) for name, stats in splits.items()},
        }
        for t in schema.relation_types
    ]
