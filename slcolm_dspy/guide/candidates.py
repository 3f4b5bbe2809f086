"""Which relation definitions an LLM sees for a sentence: the SLM's predicted types, the types
whose triggers occur in the sentence, and the types whose definitions are most similar to it;
bounded, with the SLM's types first and the rest ranked by similarity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.guide import render
from slcolm_dspy.guide.embed import Embedder
from slcolm_dspy.guide.triggers import triggered_types


@dataclass
class CandidateSelector:
    schema: Schema
    embedder: Embedder
    top_m: int = 4
    max_types: int = 12

    def __post_init__(self) -> None:
        texts = [render.definition_line(t, self.schema) for t in self.schema.relation_types]
        self._definition_vectors = self.embedder.passages(texts)

    def similarities(self, sentences: Sequence[Sentence]) -> np.ndarray:
        """(sentences, types) cosine similarity between each sentence and each definition."""
        return self.embedder.queries([s.text for s in sentences]) @ self._definition_vectors.T

    def select(self, sentence: Sentence, slm: Sentence | None, similarity: np.ndarray) -> list[str]:
        types = list(self.schema.relation_types)
        order = np.argsort(-similarity)
        by_similarity = [types[i] for i in order]
        rank = {t: i for i, t in enumerate(by_similarity)}
        chosen: list[str] = []
        if slm is not None:
            best = {}
            for rel in slm.relations:
                best[rel.type] = max(best.get(rel.type, 0.0), rel.probability or 0.0)
            chosen += sorted(best, key=lambda t: -best[t])
        texts = (sentence.text, *sentence.variants.values())
        spaced = self.schema.spaced
        triggered = {t for text in texts for t in triggered_types(text, self.schema.triggers, words=spaced)}
        rest = {t for t in triggered if t not in chosen} | {
            t for t in by_similarity[: self.top_m] if t not in chosen
        }
        chosen += sorted(rest, key=lambda t: rank[t])
        return chosen[: self.max_types]

    def select_all(self, sentences: Sequence[Sentence], slm: Sequence[Sentence | None]) -> list[list[str]]:
        sims = self.similarities(sentences)
        return [self.select(s, p, sims[i]) for i, (s, p) in enumerate(zip(sentences, slm, strict=True))]


def definition_recall(gold: Sequence[Sentence], chosen: Sequence[Sequence[str]]) -> dict[str, float]:
    """Share of (sentence, gold type) pairs whose definition was shown, and mean definitions shown."""
    hit = total = 0
    for record, types in zip(gold, chosen, strict=True):
        wanted = {r.type for r in record.relations}
        total += len(wanted)
        hit += len(wanted & set(types))
    return {
        "definition_recall": hit / total if total else 0.0,
        "mean_definitions": sum(map(len, chosen)) / len(chosen) if chosen else 0.0,
    }
