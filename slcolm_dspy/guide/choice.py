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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slcolm_dspy.core.schema import Schema

LETTERS = "ABCDEFGHIJ"
NONE_OF_THESE = "以上都不是"


@dataclass(frozen=True)
class RoutingSettings:
    low: float = 0.1  # pairs whose best SLM probability is below this are left alone (no relation)
    high: float = 0.9  # ... and at or above this the SLM is trusted
    margin: float = 0.2  # pairs whose two best types are closer than this are routed too
    top_n: int = 3  # types offered as options


@dataclass
class ChoiceTask:
    head: int
    tail: int
    types: list[str]  # candidate types, best SLM probability first
    slm_probabilities: list[float]
    kind: str  # "relabel" or "verify"


def route(
    probabilities: np.ndarray, relation_types: Sequence[str], settings: RoutingSettings
) -> list[str] | None:
    """The candidate types to ask about for one pair, or None when the SLM is sure enough."""
    order = np.argsort(-probabilities)
    best = float(probabilities[order[0]])
    second = float(probabilities[order[1]]) if len(order) > 1 else 0.0
    if best < settings.low:
        return None
    if best < settings.high or best - second < settings.margin:
        return [relation_types[i] for i in order[: settings.top_n]]
    return None


def statement(schema: Schema, rel_type: str, head: str, tail: str) -> str:
    template = schema.statements.get(rel_type, "{head}与{tail}的关系是" + rel_type)
    return template.format(head=head, tail=tail)


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
    if not content:
        return None
    position = next((t for t in content if str(_get(t, "token") or "").strip()), content[0])
    top = _get(position, "top_logprobs")
    if not top:
        return None
    mass = np.zeros(n)
    for item in top:
        letter = str(_get(item, "token") or "").strip().rstrip(".．、")
        if len(letter) == 1 and letter in LETTERS[:n]:
            mass[LETTERS.index(letter)] += math.exp(_get(item, "logprob"))
    total = mass.sum()
    return mass / total if total > 0 else np.full(n, 1.0 / n)


def choice_prompt(instructions: str, sentence: str, options: Sequence[str]) -> str:
    return f"{instructions}\n\n句子：{sentence}\n选项：\n{options_text(options)}\n答案（只写一个字母）："


def score_options(
    lm: Any, instructions: str, sentence: str, options: Sequence[str], count: int
) -> np.ndarray | None:
    """Probability of each option (in the given order), averaged over rotations; None when the
    backend returns no log-probabilities."""
    n = len(options)
    total = np.zeros(n)
    for order in rotations(n, count):
        shown = [options[i] for i in order]
        outputs = lm(
            choice_prompt(instructions, sentence, shown),
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
