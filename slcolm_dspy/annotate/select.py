"""Which unannotated sentences to annotate next: the ones most likely to grow the long tail.

The strategy (`slcolm annotate select`), one greedy pass over the pool:

1. **Expected tail relations.** For every tail type (fewer than `tail_below` train relations),
   the evidence that a sentence holds one: the SLM's best probability for that type over the
   sentence's entity pairs, or `trigger_evidence` when one of the type's trigger words (the
   schema's lexicon) is in the text, whichever is higher. It is weighted by the type's rarity,
   1 / sqrt(1 + train count), scaled so that the rarest type weighs 1.
2. **Uncertainty.** How close the SLM's most doubtful pair score lies to its decision threshold
   (1 on the threshold, 0 at 0 or 1), times `uncertainty_weight`: a sentence the model is unsure
   about teaches it most.
3. **Spread.** Each time a type is the reason a sentence was chosen, its weight is multiplied by
   `spread`, so the budget goes round the tail instead of piling onto one type.
4. **No near-duplicates.** A sentence whose e5 vector has cosine >= `near_duplicate` with one
   already chosen is passed over (FAISS inner-product search over normalised vectors).

Every choice carries its reasons: the type it may hold and why (the SLM's probability, the trigger
word), and the doubtful pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.guide.triggers import fired_triggers


class PairScorer(Protocol):
    """What selection needs of an SLM: predictions with every pair's probabilities, and the
    threshold of each relation type."""

    labels: Any

    def predict_with_pair_scores(self, records: Sequence[Sentence]) -> list[tuple[Sentence, list[Any]]]: ...

    def thresholds(self) -> np.ndarray: ...


class Embedder(Protocol):
    def passages(self, texts: Sequence[str]) -> np.ndarray: ...


MIN_EVIDENCE = 0.05  # below this a tail type is not given as a reason (the doubt may still be)


@dataclass(frozen=True)
class SelectSettings:
    budget: int = 100  # sentences to choose
    tail_below: int | None = None  # a tail type has fewer train relations (None: the schema's head threshold)
    trigger_evidence: float = 0.3  # evidence of a type when its trigger word is in the text (mined
    # lexicons hold weak grams, "、" or "於" among them: below what a confident SLM pair gives)
    uncertainty_weight: float = 0.5
    spread: float = 0.7
    near_duplicate: float = 0.92


@dataclass
class Choice:
    """One sentence chosen for annotation: the SLM's pre-annotation, its rank and score, why."""

    record: Sentence
    rank: int
    score: float
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.record.to_json(),
            "selection": {"rank": self.rank, "score": round(self.score, 4), "reasons": self.reasons},
        }


@dataclass
class _Pool:
    """What the greedy pass reads: per sentence, evidence per tail type and its doubt."""

    predictions: list[Sentence]
    evidence: np.ndarray  # (sentences, tail types)
    why: list[dict[str, str]]  # per sentence: tail type -> why it may hold one
    doubt: np.ndarray  # (sentences,)
    doubtful_pair: list[dict[str, Any] | None]


def tail_types(schema: Schema, train_counts: Mapping[str, int], tail_below: int | None) -> list[str]:
    below = tail_below if tail_below is not None else (schema.head_threshold or 100)
    return [t for t in schema.relation_types if train_counts.get(t, 0) < below]


def rarity_weights(types: Sequence[str], train_counts: Mapping[str, int]) -> np.ndarray:
    raw = np.array([1.0 / math.sqrt(1 + train_counts.get(t, 0)) for t in types], dtype=np.float64)
    return raw / raw.max() if len(raw) else raw


def _score_pool(
    pool: Sequence[Sentence], slm: PairScorer, schema: Schema, tails: Sequence[str], settings: SelectSettings
) -> _Pool:
    label_types = list(slm.labels.relation_types)
    columns = [label_types.index(t) if t in label_types else -1 for t in tails]
    thresholds = slm.thresholds()
    predictions, why, doubtful = [], [], []
    evidence = np.zeros((len(pool), len(tails)))
    doubt = np.zeros(len(pool))
    for i, (predicted, pairs) in enumerate(slm.predict_with_pair_scores(pool)):
        predictions.append(predicted)
        reasons: dict[str, str] = {}
        best = np.zeros(len(label_types))
        doubtful_pair: dict[str, Any] | None = None
        for pair in pairs:
            best = np.maximum(best, pair.probabilities)
            closeness = 1 - np.abs(pair.probabilities - thresholds) / np.maximum(thresholds, 1 - thresholds)
            k = int(np.argmax(closeness))
            if closeness[k] > doubt[i]:
                doubt[i] = float(closeness[k])
                doubtful_pair = {
                    "head": predicted.entities[pair.head].text,
                    "tail": predicted.entities[pair.tail].text,
                    "type": label_types[k],
                    "probability": round(float(pair.probabilities[k]), 3),
                    "threshold": round(float(thresholds[k]), 3),
                }
        doubtful.append(doubtful_pair)
        fired = fired_triggers(predicted.text, schema.triggers, words=schema.spaced)
        for j, (rel_type, column) in enumerate(zip(tails, columns, strict=True)):
            p = float(best[column]) if column >= 0 else 0.0
            t = settings.trigger_evidence if rel_type in fired else 0.0
            evidence[i, j] = max(p, t)
            if p >= t:
                reasons[rel_type] = f"the SLM gives a pair {p:.2f}"
            else:
                reasons[rel_type] = f"its trigger word {fired[rel_type]!r} is in the text"
        why.append(reasons)
    return _Pool(predictions, evidence, why, doubt, doubtful)


def select(
    pool: Sequence[Sentence],
    slm: PairScorer,
    schema: Schema,
    train_counts: Mapping[str, int],
    settings: SelectSettings = SelectSettings(),
    embedder: Embedder | None = None,
) -> list[Choice]:
    """The `settings.budget` sentences of `pool` to annotate next, best first, each with its
    reasons (the strategy is in the module docstring). Without `embedder`, near-duplicates are
    not looked for."""
    tails = tail_types(schema, train_counts, settings.tail_below)
    scored = _score_pool(pool, slm, schema, tails, settings)
    weights = rarity_weights(tails, train_counts)
    index = _DuplicateIndex(embedder, [r.text for r in pool], settings.near_duplicate)
    open_ = np.ones(len(pool), dtype=bool)
    choices: list[Choice] = []
    while len(choices) < settings.budget and open_.any():
        tail_part = scored.evidence * weights if len(tails) else np.zeros((len(pool), 1))
        best_type = tail_part.argmax(axis=1)
        score = tail_part.max(axis=1) + settings.uncertainty_weight * scored.doubt
        score[~open_] = -np.inf
        i = int(score.argmax())
        open_[i] = False
        if index.near_chosen(i):
            continue
        index.add(i)
        reasons = _reasons(scored, tails, i, int(best_type[i]))
        choices.append(Choice(scored.predictions[i], len(choices) + 1, float(score[i]), reasons))
        if len(tails) and scored.evidence[i, best_type[i]] > 0:
            weights[best_type[i]] *= settings.spread
    return choices


def _reasons(scored: _Pool, tails: Sequence[str], i: int, j: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if len(tails) and scored.evidence[i, j] >= MIN_EVIDENCE:
        out.append({"type": tails[j], "why": f"may hold {tails[j]} (a tail type): {scored.why[i][tails[j]]}"})
    pair = scored.doubtful_pair[i]
    if pair is not None:
        out.append(
            {
                "type": pair["type"],
                "why": f"the SLM is unsure of {pair['head']} → {pair['tail']} as {pair['type']}"
                f" ({pair['probability']} against its threshold {pair['threshold']})",
            }
        )
    return out


class _DuplicateIndex:
    """Chosen sentences' e5 vectors in a FAISS inner-product index (cosine on unit vectors)."""

    def __init__(self, embedder: Embedder | None, texts: Sequence[str], limit: float) -> None:
        self.limit = limit
        self.vectors = embedder.passages(texts).astype(np.float32) if embedder is not None else None
        self.index: Any = None
        if self.vectors is not None:
            import faiss

            faiss.normalize_L2(self.vectors)
            self.index = faiss.IndexFlatIP(self.vectors.shape[1])

    def near_chosen(self, i: int) -> bool:
        if self.index is None or self.index.ntotal == 0:
            return False
        similarity, _ = self.index.search(self.vectors[i : i + 1], 1)
        return bool(similarity[0, 0] >= self.limit)

    def add(self, i: int) -> None:
        if self.index is not None:
            self.index.add(self.vectors[i : i + 1])
