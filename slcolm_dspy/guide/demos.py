"""Demonstrations retrieved by similarity with an exact FAISS index (inner product over
L2-normalised vectors). The pool is built from annotated sentences with the SLM's predictions
on them; it never contains test sentences, and a query never retrieves itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence

DemoOrder = Literal["ascending", "descending"]


@dataclass(frozen=True)
class Demo:
    gold: Sentence
    slm: Sentence | None


class DemoRetriever:
    def __init__(self, pool: Sequence[Demo], vectors: np.ndarray) -> None:
        if len(pool) != len(vectors):
            raise SlcolmError(f"demo pool has {len(pool)} sentences but {len(vectors)} vectors")
        self.pool = list(pool)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        faiss.normalize_L2(vectors)
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)
        self._texts = [d.gold.text for d in self.pool]

    def retrieve(
        self, queries: Sequence[Sentence], vectors: np.ndarray, k: int, order: DemoOrder = "ascending"
    ) -> list[list[Demo]]:
        """The k most similar pool sentences for each query, the query itself excluded.

        `ascending` puts the most similar demonstration last, next to the query (as the paper's
        prompts did); `descending` puts it first.
        """
        if k <= 0 or not self.pool:
            return [[] for _ in queries]
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        faiss.normalize_L2(vectors)
        _, found = self.index.search(vectors, min(k + 1, len(self.pool)))
        out = []
        for query, row in zip(queries, found, strict=True):
            own = {query.text, *query.variants.values()}
            picked = [self.pool[i] for i in row if i >= 0 and self._texts[i] not in own][:k]
            out.append(picked[::-1] if order == "ascending" else picked)
        return out
