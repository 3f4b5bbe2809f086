"""SLM + LLM merge modes, as pure functions over per-sentence relation tables.

A table maps relation type -> list of items. Items are whatever the two systems produced (raw
LLM pairs in the replay, entity-key pairs for records); two items are equal when their elements
are, whatever the sequence type. Modes 0-4 follow the authors' implementation (reference notes
§4), including its quirks; `per_type` is the clean split the authors' mode 3 approximates.

- 0 `llm`: the LLM table alone.
- 1 `union`: the LLM table plus every SLM item not already listed under its type.
- 2 `union` over SLM items above a probability threshold (the caller filters; see records.py).
- 3 `slm_replaces`: for each type the SLM predicted in the sentence and not in W, the SLM's items
  replace the LLM's; W types keep the LLM's items, as do types the SLM did not predict.
- 4 `slm_wins_overlap`: for types both predicted, the SLM's items replace the LLM's; SLM-only types
  are not added.
- `per_type` (clean mode 3): types in W come from the LLM, every other type from the SLM.
- `by_source`: each type from the SLM, the LLM or the union of both (the learned per-type policy).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

Table = Mapping[str, Any]
MergeMode = Literal["0", "1", "2", "3", "3-clean", "4"]
MERGE_MODES: tuple[MergeMode, ...] = ("0", "1", "2", "3", "3-clean", "4")


# The paper's mode-2 SLM probability thresholds: one list for the replay table and the optimizer.
MODE2_THRESHOLDS = (0.5, 0.7, 0.9)


def _key(item: Any) -> Any:
    return tuple(item) if isinstance(item, list | tuple) else item


def _copy(table: Table) -> dict[str, Any]:
    return {t: list(v) if isinstance(v, list) else v for t, v in table.items()}


def llm_only(llm: Table, slm: Table) -> dict[str, Any]:
    return _copy(llm)


def union(llm: Table, slm: Table) -> dict[str, Any]:
    merged = _copy(llm)
    for rel_type, items in slm.items():
        current = merged.get(rel_type)
        if not isinstance(current, list):
            merged[rel_type] = list(items)
            continue
        seen = {_key(x) for x in current if not isinstance(x, dict)}
        for item in items:
            if _key(item) not in seen:
                current.append(item)
                seen.add(_key(item))
    return merged


def slm_replaces(llm: Table, slm: Table, llm_types: Collection[str]) -> dict[str, Any]:
    merged = _copy(llm)
    for rel_type, items in slm.items():
        if rel_type not in llm_types:
            merged[rel_type] = list(items)
    return merged


def slm_wins_overlap(llm: Table, slm: Table) -> dict[str, Any]:
    merged = _copy(llm)
    for rel_type in llm:
        if rel_type in slm:
            merged[rel_type] = list(slm[rel_type])
    return merged


def per_type(llm: Table, slm: Table, llm_types: Collection[str]) -> dict[str, Any]:
    merged = {t: list(v) for t, v in slm.items() if t not in llm_types}
    merged.update({t: list(v) if isinstance(v, list) else v for t, v in llm.items() if t in llm_types})
    return merged


def by_source(llm: Table, slm: Table, sources: Mapping[str, str], default: str = "slm") -> dict[str, Any]:
    """Each type from its source: "slm", "llm" or "union"; types not listed from `default`."""

    def pick(table: Table, wanted: tuple[str, ...]) -> dict[str, Any]:
        return {t: v for t, v in table.items() if sources.get(t, default) in wanted}

    return union(pick(llm, ("llm", "union")), pick(slm, ("slm", "union")))


def merge_tables(llm: Table, slm: Table, mode: MergeMode, llm_types: Collection[str] = ()) -> dict[str, Any]:
    """Merge one sentence's tables. Mode 2 is mode 1 on an SLM table already thresholded."""
    if mode == "0":
        return llm_only(llm, slm)
    if mode in ("1", "2"):
        return union(llm, slm)
    if mode == "3":
        return slm_replaces(llm, slm, llm_types)
    if mode == "3-clean":
        return per_type(llm, slm, llm_types)
    if mode == "4":
        return slm_wins_overlap(llm, slm)
    raise ValueError(f"unknown merge mode {mode!r}; choose from {', '.join(MERGE_MODES)}")
