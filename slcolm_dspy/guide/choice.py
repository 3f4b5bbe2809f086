"""QA4RE-style multiple choice for the pairs the SLM is unsure of (filter-then-rerank).

Routing: an ordered entity pair goes to the LLM when the SLM's best probability for it lies in
a band, or when its two best types are close. Two questions can be asked:
- `relabel`: which of the SLM's top-n types, written as plain statements, holds, or none;
- `verify`: does the SLM's (uncertain) triple hold, yes or no.
Answers are scored from the answer token's log-probabilities where the backend returns them,
averaged over rotations of the options so that no answer wins by position; elsewhere the
generated letter is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slcolm_dspy.core.prompts import PromptTemplate
from slcolm_dspy.core.records import Relation, Sentence
from slcolm_dspy.core.schema import Schema

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class RoutingSettings:
    low: float = 0.1  # pairs whose best SLM probability is below this are left alone (no relation)
    high: float = 0.9  # ... and at or above this the SLM is trusted
    margin: float = 0.2  # pairs whose two best types are closer than this are routed too
    top_n: int = 3  # types offered as options


@dataclass(frozen=True)
class ChoiceThresholds:
    """How LLM answers change the SLM's record; chosen on dev by the optimizer."""

    accept: float = 0.5  # relabel: the chosen type is taken when its probability exceeds this
    reject: float = 0.5  # relabel: "none of these" above this removes the pair's relations
    keep: float = 0.5  # verify: an uncertain SLM triple is dropped when "holds" is below this


@dataclass
class ChoiceTask:
    head: int
    tail: int
    types: list[str]  # candidate types, best SLM probability first
    slm_probabilities: list[float]
    kind: str  # "relabel" or "verify"
    best: float = 0.0  # the pair's two best SLM probabilities, so routing can be replayed offline
    second: float = 0.0


@dataclass(frozen=True)
class PairTopTwo:
    """An entity pair's two best SLM relation probabilities, kept per sentence in a guide run so
    that narrower routing bands can be replayed offline without the SLM."""

    head: int
    tail: int
    best: float
    second: float

    def to_json(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "tail": self.tail,
            "best": round(self.best, 4),
            "second": round(self.second, 4),
        }

    @classmethod
    def from_json(cls, blob: Any) -> PairTopTwo:
        """From a run's JSON: the named record, or the positional list older runs wrote."""
        if isinstance(blob, list | tuple):  # runs written before this record had names
            head, tail, best, second = blob
            return cls(int(head), int(tail), float(best), float(second))
        return cls(int(blob["head"]), int(blob["tail"]), float(blob["best"]), float(blob["second"]))


def is_routed(best: float, second: float, settings: RoutingSettings) -> bool:
    """Whether a pair with these two best SLM probabilities goes to the LLM."""
    if best < settings.low:
        return False
    return best < settings.high or best - second < settings.margin


def top_two(probabilities: np.ndarray) -> tuple[float, float]:
    ordered = np.sort(probabilities)[::-1]
    return float(ordered[0]), float(ordered[1]) if len(ordered) > 1 else 0.0


def route(
    probabilities: np.ndarray, relation_types: Sequence[str], settings: RoutingSettings
) -> list[str] | None:
    """The candidate types to ask about for one pair, or None when the SLM is sure enough."""
    if not is_routed(*top_two(probabilities), settings):
        return None
    order = np.argsort(-probabilities)
    return [relation_types[i] for i in order[: settings.top_n]]


def apply_choices(
    record: Sentence,
    decisions: Iterable[Mapping[str, Any]],
    thresholds: ChoiceThresholds,
    routing: RoutingSettings | None = None,
) -> Sentence:
    """The SLM's record corrected by the LLM's answers (decisions as the guide stores them).

    With `routing`, only decisions about pairs that band routes are applied: a run made with a
    wide band can be re-read offline as if a narrower one had been used, at no LLM cost.
    """
    drop: set[tuple[int, int, str]] = set()
    add: list[Relation] = []
    for d in decisions:
        if d.get("failed") or (
            routing is not None and not is_routed(d.get("best", 1.0), d.get("second", 0.0), routing)
        ):
            continue
        head, tail, types, probs = d["head"], d["tail"], d["types"], d["llm_probabilities"]
        if d["kind"] == "verify":
            if probs[0] < thresholds.keep:
                drop.add((head, tail, types[0]))
            continue
        best = int(np.argmax(probs))
        if best < len(types) and probs[best] > thresholds.accept:
            chosen = types[best]
            drop.update((head, tail, t) for t in types if t != chosen)
            add.append(Relation(chosen, head, tail, d["slm_probabilities"][best]))
        elif best == len(types) and probs[best] > thresholds.reject:
            drop.update((head, tail, t) for t in types)
    kept = [r for r in record.relations if (r.head, r.tail, r.type) not in drop]
    present = {(r.head, r.tail, r.type) for r in kept}
    for rel in add:
        if (rel.head, rel.tail, rel.type) not in present:
            kept.append(rel)
            present.add((rel.head, rel.tail, rel.type))
    return record.with_predictions(record.entities, kept)


def statement(schema: Schema, rel_type: str, head: str, tail: str) -> str:
    """A triple as a plain statement: the schema's own for its type, else the template's."""
    if rel_type in schema.statements:
        return schema.statements[rel_type].format(head=head, tail=tail)
    return schema.prompts.text("choice", "statement", head=head, tail=tail, type=rel_type)


def relabel_options(schema: Schema, types: Sequence[str], head: str, tail: str) -> list[str]:
    """One statement per candidate type, then "none of these"."""
    none = schema.prompts.text("choice", "none_of_these")
    return [statement(schema, t, head, tail) for t in types] + [none]


def verify_options(schema: Schema, rel_type: str, head: str, tail: str) -> list[str]:
    """Does the triple hold: yes, or no."""
    prompts = schema.prompts
    return [
        prompts.text("choice", "holds", statement=statement(schema, rel_type, head, tail)),
        prompts.text("choice", "does_not_hold"),
    ]


def options_text(options: Sequence[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(options))


def rotations(n: int, count: int) -> list[list[int]]:
    """`count` cyclic rotations of n options, spread evenly."""
    count = max(1, min(count, n))
    return [[(i + shift) % n for i in range(n)] for shift in range(0, n, max(1, n // count))][:count]


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def letter_probabilities(logprobs: Any, n: int) -> np.ndarray | None:
    """Normalised probabilities of the letters A.. at the first non-blank answer token.

    None when the backend sent no log-probabilities at all; a flat distribution when it did but no
    option letter is among the top tokens (the model meant to say something else: no information).
    """
    content = _get(logprobs, "content") if logprobs is not None else None
    if not content or not isinstance(content, list):
        return None
    position = next((t for t in content if str(_get(t, "token") or "").strip()), content[0])
    top = _get(position, "top_logprobs")
    if not top:
        return None
    mass = np.zeros(n)
    for item in top if isinstance(top, list) else ():
        letter = str(_get(item, "token") or "").strip().rstrip(".．、")
        logprob = _get(item, "logprob")
        # a server's malformed entry (a word, NaN, +inf) carries no probability
        if not isinstance(logprob, int | float) or not math.isfinite(logprob) or logprob > 1e-6:
            continue
        if len(letter) == 1 and letter in LETTERS[:n]:
            mass[LETTERS.index(letter)] += math.exp(logprob)
    total = mass.sum()
    return mass / total if total > 0 else np.full(n, 1.0 / n)


def choice_prompt(prompts: PromptTemplate, instructions: str, sentence: str, options: Sequence[str]) -> str:
    return prompts.text(
        "choice", "completion", instructions=instructions, sentence=sentence, options=options_text(options)
    )


def score_options(
    lm: Any,
    prompts: PromptTemplate,
    instructions: str,
    sentence: str,
    options: Sequence[str],
    count: int,
) -> np.ndarray | None:
    """Probability of each option (in the given order), averaged over rotations; None when the
    backend returns no log-probabilities."""
    n = len(options)
    total = np.zeros(n)
    for order in rotations(n, count):
        shown = [options[i] for i in order]
        outputs = lm(
            choice_prompt(prompts, instructions, sentence, shown),
            max_tokens=3,  # room for a leading blank before the letter
            temperature=0.0,
            logprobs=True,
            top_logprobs=10,
        )
        first = outputs[0] if outputs else None
        probs = letter_probabilities(first.get("logprobs"), n) if isinstance(first, dict) else None
        if probs is None:
            return None
        for position, original in enumerate(order):
            total[original] += probs[position]
    return total / total.sum() if total.sum() > 0 else None
