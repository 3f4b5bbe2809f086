"""Counting and aggregation shared by both protocols."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

MacroKind = Literal["harmonic", "mean_f1"]


@dataclass
class Counts:
    correct: int = 0
    predicted: int = 0
    gold: int = 0

    def add(self, other: Counts) -> None:
        self.correct += other.correct
        self.predicted += other.predicted
        self.gold += other.gold


def prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    """Precision, recall, F1; 0 where a denominator is 0."""
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def per_type_rows(counts: Mapping[str, Counts], types: Iterable[str]) -> dict[str, dict[str, float]]:
    rows = {}
    for t in types:
        c = counts.get(t, Counts())
        p, r, f = prf(c.correct, c.predicted, c.gold)
        rows[t] = {"correct": c.correct, "predicted": c.predicted, "gold": c.gold, "p": p, "r": r, "f1": f}
    return rows


def micro(rows: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    correct = sum(int(r["correct"]) for r in rows.values())
    predicted = sum(int(r["predicted"]) for r in rows.values())
    gold = sum(int(r["gold"]) for r in rows.values())
    p, r, f = prf(correct, predicted, gold)
    return {"p": p, "r": r, "f1": f, "correct": correct, "predicted": predicted, "gold": gold}


def macro(rows: Mapping[str, Mapping[str, float]], kind: MacroKind) -> dict[str, float]:
    """`harmonic`: F1 of mean-P and mean-R (the paper); `mean_f1`: mean of per-type F1."""
    if not rows:
        return {"p": 0.0, "r": 0.0, "f1": 0.0}
    n = len(rows)
    mp = sum(r["p"] for r in rows.values()) / n
    mr = sum(r["r"] for r in rows.values()) / n
    if kind == "harmonic":
        f = 2 * mp * mr / (mp + mr) if mp + mr else 0.0
    else:
        f = sum(r["f1"] for r in rows.values()) / n
    return {"p": mp, "r": mr, "f1": f}
