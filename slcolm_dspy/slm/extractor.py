"""Run a trained span model: records in, records with scored entities and relations out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.slm import checkpoint
from slcolm_dspy.slm.batching import Labels, collate, encode_for_inference
from slcolm_dspy.slm.model import SpanRelationModel
from slcolm_dspy.slm.vocab import CharVocab

CHAR_BUDGET = 1600  # characters per inference batch (about 32 sentences of median length)


@dataclass
class PairScores:
    """One ordered pair of predicted entities (indices into the predicted record's entities) and
    its probability for every relation type, in the model's label order."""

    head: int
    tail: int
    probabilities: np.ndarray


@dataclass
class Representations:
    """Vectors for demonstration retrieval: one per sentence, one per predicted entity pair."""

    sentences: np.ndarray  # (n sentences, H): mean of the character states
    pairs: list[tuple[int, int, int]]  # (sentence index, head entity, tail entity) of predictions
    pair_vectors: np.ndarray  # (n pairs, D)


class SpanExtractor:
    def __init__(
        self,
        model: SpanRelationModel,
        vocab: CharVocab,
        labels: Labels,
        *,
        relation_threshold: float = 0.4,
        entity_threshold: float = 0.0,
        batch_size: int = 32,
        overlapping: bool = False,
        text_form: str | None = None,
    ) -> None:
        self.model = model.eval()
        self.vocab = vocab
        self.labels = labels
        self.relation_threshold = relation_threshold
        self.entity_threshold = entity_threshold
        self.batch_size = batch_size
        self.overlapping = overlapping
        self.text_form = text_form

    @classmethod
    def load(cls, directory: Path, **overrides: float) -> SpanExtractor:
        model, vocab, labels, config = checkpoint.load(directory)
        settings: dict = {
            "relation_threshold": config.get("relation_threshold", 0.4),
            "text_form": config.get("text_form"),
        }
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(model, vocab, labels, **settings)

    def _batches(self, records: Sequence[Sentence]) -> Iterator[tuple[int, list[Sentence]]]:
        """Consecutive chunks of at most `batch_size` sentences and `CHAR_BUDGET` characters: the
        span and pair tensors grow with length, so long sentences go in smaller batches."""
        lo = 0
        while lo < len(records):
            hi, chars = lo, 0
            while hi < len(records) and hi - lo < self.batch_size:
                chars += len(records[hi].text)
                if hi > lo and chars > CHAR_BUDGET:
                    break
                hi += 1
            yield lo, list(records[lo:hi])
            lo = hi

    @torch.no_grad()
    def _run(self, chunk: list[Sentence]):
        model = self.model
        max_tokens = model.encoder.max_length
        items = [
            encode_for_inference(s, self.vocab, model.max_span, max_tokens, self.text_form) for s in chunk
        ]
        batch = collate(items, len(self.labels.relation_types), with_labels=False)
        hidden = model.encoder(batch.ids, batch.mask)
        span_vecs = model.span_vectors(hidden, batch.spans)
        probs = model.entity_logits(hidden, batch.spans, span_vecs).softmax(-1)
        conf, label = probs.max(-1)
        keep = ((label > 0) & (conf >= self.entity_threshold)).nonzero().squeeze(1)
        by_sentence: dict[int, list[int]] = {}
        for idx in keep.tolist():
            by_sentence.setdefault(int(batch.spans[idx, 0]), []).append(idx)
        if not self.overlapping:
            by_sentence = {
                b: self._without_overlaps(idxs, batch.spans, conf) for b, idxs in by_sentence.items()
            }
        pairs = [(a, b) for idxs in by_sentence.values() for a in idxs for b in idxs if a != b]
        pair_tensor = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
        pair_types = label[pair_tensor] if pairs else torch.zeros(0, 2, dtype=torch.long)
        pair_vecs = model.pair_vectors(hidden, batch.spans, span_vecs, pair_tensor, pair_types)
        rel_probs = torch.sigmoid(model.relation_head(pair_vecs))
        return batch, hidden, by_sentence, conf, label, pairs, pair_vecs, rel_probs

    @staticmethod
    def _without_overlaps(idxs: list[int], spans: torch.Tensor, conf: torch.Tensor) -> list[int]:
        """Greedy by confidence: a span overlapping a more confident kept span is dropped
        (overlapping gold mentions are rare: 17 pairs in the ChisRE train split)."""
        kept: list[int] = []
        for idx in sorted(idxs, key=lambda i: -float(conf[i])):
            start, end = int(spans[idx, 1]), int(spans[idx, 2])
            if all(end <= int(spans[k, 1]) or start >= int(spans[k, 2]) for k in kept):
                kept.append(idx)
        return kept

    def predict(self, records: Sequence[Sentence]) -> list[Sentence]:
        return [sentence for sentence, _ in self.predict_with_pair_scores(records)]

    def predict_with_pair_scores(
        self, records: Sequence[Sentence]
    ) -> list[tuple[Sentence, list[PairScores]]]:
        """Predictions, plus every ordered pair of predicted entities with its probability for
        every relation type (the above-threshold ones are the predicted relations).

        Sentences are batched with others of similar length (little padding) and returned in
        their input order."""
        by_length = sorted(range(len(records)), key=lambda i: len(records[i].text))
        ordered = [records[i] for i in by_length]
        out: list[tuple[Sentence, list[PairScores]]] = []
        for _, chunk in self._batches(ordered):
            batch, _, by_sentence, conf, label, pairs, _, rel_probs = self._run(chunk)
            entity_index: dict[int, int] = {}
            entities: dict[int, list[Entity]] = {b: [] for b in range(len(chunk))}
            for b, idxs in by_sentence.items():
                for idx in sorted(idxs, key=lambda i: (int(batch.spans[i, 1]), int(batch.spans[i, 2]))):
                    start, end = int(batch.spans[idx, 1]) - 1, int(batch.spans[idx, 2]) - 1
                    entity_index[idx] = len(entities[b])
                    entities[b].append(
                        Entity(
                            self.labels.entity_types[int(label[idx]) - 1],
                            chunk[b].text[start:end],
                            start,
                            end,
                            round(float(conf[idx]), 4),
                        )
                    )
            relations: dict[int, list[Relation]] = {b: [] for b in range(len(chunk))}
            scores: dict[int, list[PairScores]] = {b: [] for b in range(len(chunk))}
            probs = rel_probs.numpy()
            for row, (a, b_) in enumerate(pairs):
                sentence = int(batch.spans[a, 0])
                head, tail = entity_index[a], entity_index[b_]
                scores[sentence].append(PairScores(head, tail, probs[row]))
                for rel_type in (probs[row] > self.relation_threshold).nonzero()[0]:
                    relations[sentence].append(
                        Relation(
                            self.labels.relation_types[rel_type],
                            head,
                            tail,
                            round(float(probs[row, rel_type]), 4),
                        )
                    )
            for b, sentence in enumerate(chunk):
                rels = sorted(relations[b], key=lambda r: (r.head, r.tail, -(r.probability or 0)))
                out.append((sentence.with_predictions(entities[b], rels), scores[b]))
        restored: list[tuple[Sentence, list[PairScores]]] = [out[0]] * len(out) if out else []
        for position, original in enumerate(by_length):
            restored[original] = out[position]
        return restored

    def with_threshold(
        self, predicted: Sequence[tuple[Sentence, list[PairScores]]], threshold: float
    ) -> list[Sentence]:
        """The same predictions with relations re-read from the pair scores at another threshold."""
        out = []
        for sentence, pairs in predicted:
            relations = [
                Relation(self.labels.relation_types[t], p.head, p.tail, round(float(p.probabilities[t]), 4))
                for p in pairs
                for t in (p.probabilities > threshold).nonzero()[0]
            ]
            relations.sort(key=lambda r: (r.head, r.tail, -(r.probability or 0)))
            out.append(sentence.with_predictions(sentence.entities, relations))
        return out

    def representations(self, records: Sequence[Sentence]) -> Representations:
        sentence_vecs, pair_rows, pair_vecs = [], [], []
        for lo, chunk in self._batches(records):
            batch, hidden, by_sentence, _, _, pairs, vecs, _ = self._run(chunk)
            mask = batch.mask.unsqueeze(-1).float()
            sentence_vecs.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
            order = {
                b: sorted(idxs, key=lambda i: (int(batch.spans[i, 1]), int(batch.spans[i, 2])))
                for b, idxs in by_sentence.items()
            }
            for a, b_ in pairs:
                sentence = int(batch.spans[a, 0])
                pair_rows.append((lo + sentence, order[sentence].index(a), order[sentence].index(b_)))
            pair_vecs.append(vecs.numpy())
        dim = pair_vecs[0].shape[1] if pair_vecs else 0
        return Representations(
            np.concatenate(sentence_vecs) if sentence_vecs else np.zeros((0, 0)),
            pair_rows,
            np.concatenate(pair_vecs) if pair_vecs else np.zeros((0, dim)),
        )
