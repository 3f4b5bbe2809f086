"""Merge policies: how a compiled program turns an SLM record and an LLM record into one.

A policy is data (saved as JSON in a compiled program) plus one `apply`. The kinds:
- `slm`, `llm`: one system alone;
- `mode-1` .. `mode-4`, `mode-3-clean`: the table modes of `modes.py`, with their parameter
  (the SLM threshold of mode 2, the type set W of modes 3);
- `per-type`: for each relation type, the SLM's relations, the LLM's, or the union of both,
  learned from dev F1 by `learn_per_type`.
Every parameter is chosen on dev by the optimizer; nothing here sees a test split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.evaluate import Protocol, RelationEvaluator
from slcolm_dspy.merge.modes import MergeMode
from slcolm_dspy.merge.records import merge_records

Source = Literal["slm", "llm", "union"]
SOURCES: tuple[Source, ...] = ("slm", "union", "llm")  # also the preference order on ties
POLICY_KINDS = ("slm", "llm", "mode-1", "mode-2", "mode-3", "mode-3-clean", "mode-4", "per-type")


@dataclass(frozen=True)
class MergePolicy:
    kind: str
    threshold: float | None = None  # mode-2: SLM relations kept above this probability
    llm_types: tuple[str, ...] = ()  # mode-3 / mode-3-clean: W
    sources: Mapping[str, Source] = field(default_factory=dict)  # per-type
    default: Source = "slm"  # per-type: types without a learned choice
    rule: str = ""  # where W or the sources came from, for the report

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise SlcolmError(f"unknown merge policy {self.kind!r}; choose from {', '.join(POLICY_KINDS)}")

    @property
    def label(self) -> str:
        if self.kind == "mode-2":
            return f"mode-2 (SLM > {self.threshold})"
        if self.kind in ("mode-3", "mode-3-clean"):
            return f"{self.kind} (W: {len(self.llm_types)} types{', ' + self.rule if self.rule else ''})"
        if self.kind == "per-type" and self.rule == "cross-fitted":
            return f"per-type ({self.rule})"
        if self.kind == "per-type":
            llm = sum(1 for v in self.sources.values() if v == "llm")
            both = sum(1 for v in self.sources.values() if v == "union")
            return f"per-type (LLM {llm}, union {both} types; others SLM)"
        return self.kind

    def apply(self, llm: Sentence, slm: Sentence) -> Sentence:
        if self.kind == "slm":
            return slm
        if self.kind == "llm":
            return llm
        if self.kind == "per-type":

            def source(t: str) -> Source:
                return self.sources.get(t, self.default)

            keep_slm = slm.with_predictions(
                slm.entities, [r for r in slm.relations if source(r.type) in ("slm", "union")]
            )
            keep_llm = llm.with_predictions(
                llm.entities, [r for r in llm.relations if source(r.type) in ("llm", "union")]
            )
            return merge_records(keep_llm, keep_slm, "1")
        mode: MergeMode = self.kind.removeprefix("mode-")  # type: ignore[assignment]
        return merge_records(llm, slm, mode, llm_types=self.llm_types, threshold=self.threshold)

    def apply_all(self, llm: Sequence[Sentence], slm: Sequence[Sentence]) -> list[Sentence]:
        return [self.apply(a, b) for a, b in zip(llm, slm, strict=True)]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "llm_types": list(self.llm_types),
            "sources": dict(self.sources),
            "default": self.default,
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, blob: Mapping[str, Any]) -> MergePolicy:
        try:
            sources = dict(blob.get("sources") or {})
            bad = [s for s in [*sources.values(), blob.get("default", "slm")] if s not in SOURCES]
            if bad:
                raise SlcolmError(f"merge policy: unknown source {bad[0]!r}; choose slm, llm or union")
            return cls(
                kind=str(blob["kind"]),
                threshold=blob.get("threshold"),
                llm_types=tuple(blob.get("llm_types") or ()),
                sources=sources,
                default=blob.get("default", "slm"),
                rule=str(blob.get("rule", "")),
            )
        except KeyError as exc:
            raise SlcolmError(f"merge policy: missing key {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise SlcolmError(f"merge policy: malformed ({exc})") from None


def learn_per_type(
    gold: Sequence[Sentence],
    llm: Sequence[Sentence],
    slm: Sequence[Sentence],
    schema: Schema,
    *,
    protocol: Protocol = "paper",
    min_gain: float = 0.0,
) -> MergePolicy:
    """For each type with gold in `gold`, the source (SLM, union, LLM) with the best F1 there.

    The SLM keeps a type unless another source beats it by more than `min_gain`: a type the
    sample says nothing about stays with the supervised model.
    """
    evaluator = RelationEvaluator(gold, schema, protocol)
    union = [merge_records(a, b, "1") for a, b in zip(llm, slm, strict=True)]
    rows = {
        "slm": evaluator(slm)["per_type"],
        "union": evaluator(union)["per_type"],
        "llm": evaluator(llm)["per_type"],
    }
    sources: dict[str, Source] = {}
    for rel_type in schema.relation_types:
        f1 = {s: rows[s][rel_type]["f1"] for s in SOURCES if rel_type in rows[s]}
        if "slm" not in f1:
            continue
        best = max(SOURCES, key=lambda s: (f1.get(s, -1.0), -SOURCES.index(s)))
        if best != "slm" and f1[best] > f1["slm"] + min_gain:
            sources[rel_type] = best
    return MergePolicy("per-type", sources=sources, rule=f"dev {protocol} F1 per type")


def cross_fitted(
    gold: Sequence[Sentence],
    llm: Sequence[Sentence],
    slm: Sequence[Sentence],
    schema: Schema,
    *,
    folds: int = 2,
    protocol: Protocol = "paper",
) -> list[Sentence]:
    """Per-type merged records where each sentence's policy was learned on the other folds.

    Scoring a learned policy on the sentences it was learned from flatters it (40 choices fitted
    to the sample); this is the honest dev estimate the optimizer compares with other policies.
    """
    merged: list[Sentence | None] = [None] * len(gold)
    for fold in range(folds):
        train = [i for i in range(len(gold)) if i % folds != fold]
        held = [i for i in range(len(gold)) if i % folds == fold]
        policy = learn_per_type(
            [gold[i] for i in train],
            [llm[i] for i in train],
            [slm[i] for i in train],
            schema,
            protocol=protocol,
        )
        for i in held:
            merged[i] = policy.apply(llm[i], slm[i])
    return [m for m in merged if m is not None]
