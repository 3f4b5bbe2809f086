"""Run a trained span model: records in, records with scored entities and relations out.

Texts of any length: a text longer than the encoder's positions is read in overlapping windows
(`batching.windows`); span and pair work is done in chunks, so memory grows with the text, not
with its square. Where the CPU has bf16 units (AMX / AVX-512 BF16), or the GPU bf16 support,
inference runs under bf16 autocast (`precision="auto"`); `precision="fp32"` turns it off. The
model runs on the device it is given (`device="cuda"`, or `auto`: a GPU where one is visible);
everything it returns is on the CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.slm import checkpoint
from slcolm_dspy.slm.batching import Batch, Encoded, Labels, SpanRules, collate, encode_for_inference
from slcolm_dspy.slm.model import CHUNK, RangeMax, SpanRelationModel
from slcolm_dspy.slm.units import UnitVocab

TOKEN_BUDGET = 2048  # tokens per inference batch (about 55 ChisRE sentences of median length)


def bf16_supported() -> bool:
    """bf16 matrix units on this CPU (AMX or AVX-512 BF16); elsewhere bf16 is emulated and slow."""
    cpu = torch.cpu
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)


def autocast_context(precision: str, device_type: str = "cpu"):
    """bf16 autocast for `bf16`, and for `auto` where the device supports it; fp32 otherwise."""
    native = torch.cuda.is_bf16_supported() if device_type == "cuda" else bf16_supported()
    if precision == "bf16" or (precision == "auto" and native):
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda`, `cuda:N`, or `auto` (the first GPU where one is visible, else the CPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SlcolmError(f"--device {name}: not a device (cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SlcolmError(f"--device {name}: no CUDA GPU is visible to this process")
    if device.type not in ("cpu", "cuda"):
        raise SlcolmError(f"--device {name}: the SLM runs on cpu or cuda")
    return device


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

    sentences: np.ndarray  # (n sentences, H): mean of the token states
    pairs: list[tuple[int, int, int]]  # (sentence index, head entity, tail entity) of predictions
    pair_vectors: np.ndarray  # (n pairs, D)


@dataclass
class _Scored:
    """One batch's raw output: kept entity spans per sentence, their pairs and probabilities."""

    items: list[Encoded]
    batch: Batch
    hidden: torch.Tensor  # on the model's device (read only by `representations`)
    by_sentence: dict[int, list[int]]
    conf: torch.Tensor
    label: torch.Tensor
    pairs: list[tuple[int, int]]
    pair_vecs: torch.Tensor | None
    rel_probs: np.ndarray


class SpanExtractor:
    def __init__(
        self,
        model: SpanRelationModel,
        vocab: UnitVocab,
        labels: Labels,
        rules: SpanRules,
        *,
        relation_threshold: float = 0.4,
        relation_thresholds: Mapping[str, float] | None = None,
        entity_threshold: float = 0.0,
        batch_size: int = 64,
        overlapping: bool = False,
        text_form: str | None = None,
        precision: str = "auto",
        device: str | None = None,
        type_pairs: Sequence[Sequence[str]] | None = None,
    ) -> None:
        # None: where the model already is (training evaluates its own model in place)
        self.device = next(model.parameters()).device if device is None else resolve_device(device)
        self.model = model.to(self.device).eval()
        self.vocab = vocab
        self.labels = labels
        self.rules = rules
        self.relation_threshold = relation_threshold
        self.relation_thresholds = dict(relation_thresholds or {})
        self.entity_threshold = entity_threshold
        self.batch_size = batch_size
        # entity pairs farther apart than one encoder window are not scored for a relation; a
        # count, so that the limit is reported instead of silent (see `slcolm slm predict`)
        self.unscored_far_pairs = 0
        self.overlapping = overlapping
        self.text_form = text_form
        self.precision = precision
        self.type_constraints = self._constraint_table(type_pairs)

    def _constraint_table(self, type_pairs: Sequence[Sequence[str]] | None) -> np.ndarray | None:
        """(entity type, entity type, relation type) -> 1 where the combination was seen in
        train, else 0; None: no constraint. `type_pairs` lists the allowed (head entity type,
        tail entity type, relation type) triples by name."""
        if type_pairs is None:
            return None
        n_entities = len(self.labels.entity_types) + 1
        table = np.zeros((n_entities, n_entities, len(self.labels.relation_types)), dtype=np.float32)
        for head, tail, relation in type_pairs:
            if relation in self.labels.relation_types:
                h, t = self.labels.entity_id(head), self.labels.entity_id(tail)
                table[h, t, self.labels.relation_types.index(relation)] = 1.0
        return table

    @classmethod
    def load(cls, directory: Path, **overrides: float | str | None) -> SpanExtractor:
        model, vocab, labels, config = checkpoint.load(directory)
        settings: dict = {
            "relation_threshold": config.get("relation_threshold", 0.4),
            "relation_thresholds": config.get("relation_thresholds"),
            "text_form": config.get("text_form"),
            # chosen on dev after training: None when the constraint did not help there
            "type_pairs": config.get("type_pairs") if config.get("type_constraints") else None,
        }
        if overrides.get("relation_threshold") is not None:
            settings["relation_thresholds"] = None  # an explicit threshold applies to every type
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(model, vocab, labels, SpanRules.from_json(config["span_rules"]), **settings)

    def thresholds(self, threshold: float | None = None) -> np.ndarray:
        """The relation threshold of each type, in label order (`threshold` overrides them all)."""
        if threshold is not None:
            return np.full(len(self.labels.relation_types), threshold, dtype=np.float32)
        return np.array(
            [self.relation_thresholds.get(t, self.relation_threshold) for t in self.labels.relation_types],
            dtype=np.float32,
        )

    def _batches(self, records: Sequence[Sentence]) -> Iterator[tuple[int, list[Sentence]]]:
        """Consecutive chunks of at most `batch_size` sentences and about `TOKEN_BUDGET` tokens
        (characters stand in for tokens): span and pair tensors grow with length."""
        lo = 0
        while lo < len(records):
            hi, size = lo, 0
            while hi < len(records) and hi - lo < self.batch_size:
                size += len(records[hi].text)
                if hi > lo and size > TOKEN_BUDGET:
                    break
                hi += 1
            yield lo, list(records[lo:hi])
            lo = hi

    @torch.no_grad()
    def _run(self, chunk: list[Sentence], keep_pair_vectors: bool = False) -> _Scored:
        model = self.model
        items = [encode_for_inference(s, self.vocab, self.rules, self.text_form) for s in chunk]
        batch = collate(
            items, self.vocab, len(self.labels.relation_types), model.encoder.max_length, with_labels=False
        )
        # `batch` stays on the CPU for the bookkeeping below; the model reads `on_device`
        on_device = batch.to(self.device)
        with autocast_context(self.precision, self.device.type):
            context = model.encode(on_device)
            hidden = context.hidden
            pool = RangeMax(hidden)
            conf_parts, label_parts, kept_vecs = [], [], {}
            for lo in range(0, on_device.spans.shape[0], CHUNK):
                spans = on_device.spans[lo : lo + CHUNK]
                vecs = model.span_vectors(pool, spans, on_device.widths[lo : lo + CHUNK])
                probs = model.entity_logits(hidden, spans, vecs).float().softmax(-1)
                conf, label = probs.max(-1)
                conf_parts.append(conf)
                label_parts.append(label)
                for i in ((label > 0) & (conf >= self.entity_threshold)).nonzero().squeeze(1).tolist():
                    kept_vecs[lo + i] = vecs[i]
            conf = torch.cat(conf_parts).cpu() if conf_parts else torch.zeros(0)
            no_labels = torch.zeros(0, dtype=torch.long, device=self.device)
            label_on_device = torch.cat(label_parts) if label_parts else no_labels
            label = label_on_device.cpu()
            span_list = {i: batch.spans[i].tolist() for i in kept_vecs}
            confidence = {i: float(conf[i]) for i in kept_vecs}
            by_sentence: dict[int, list[int]] = {}
            for idx in kept_vecs:
                by_sentence.setdefault(span_list[idx][0], []).append(idx)
            if not self.overlapping:
                by_sentence = {
                    b: self._without_overlaps(idxs, span_list, confidence) for b, idxs in by_sentence.items()
                }
            reach = model.encoder.max_length - 2  # pairs farther apart than one window are not scored
            candidates = [(a, b) for idxs in by_sentence.values() for a in idxs for b in idxs if a != b]
            pairs = [
                (a, b)
                for a, b in candidates
                if max(span_list[a][2], span_list[b][2]) - min(span_list[a][1], span_list[b][1]) <= reach
            ]
            self.unscored_far_pairs += len(candidates) - len(pairs)
            prob_parts, vec_parts = [], []
            for lo in range(0, len(pairs), CHUNK):
                part = pairs[lo : lo + CHUNK]
                index = torch.tensor(part, dtype=torch.long, device=self.device)
                span_vecs = torch.stack([kept_vecs[i] for pair in part for i in pair]).reshape(
                    len(part), 2, -1
                )
                # pair_vectors reads span vectors by index: give it this chunk's spans only
                local_spans = on_device.spans[index.reshape(-1)]
                local_widths = on_device.widths[index.reshape(-1)]
                local_pairs = torch.arange(2 * len(part), device=self.device).reshape(-1, 2)
                pair_types = label_on_device[index]
                vecs = model.pair_vectors(
                    context,
                    pool,
                    local_spans,
                    local_widths,
                    span_vecs.reshape(2 * len(part), -1),
                    local_pairs,
                    pair_types,
                )
                probs = torch.sigmoid(model.relation_logits(vecs).float()).cpu().numpy()
                if self.type_constraints is not None:
                    types = pair_types.cpu().numpy()
                    probs = probs * self.type_constraints[types[:, 0], types[:, 1]]
                prob_parts.append(probs)
                if keep_pair_vectors:
                    vec_parts.append(vecs.float().cpu())
        n_types = len(self.labels.relation_types)
        rel_probs = np.concatenate(prob_parts) if prob_parts else np.zeros((0, n_types), dtype=np.float32)
        pair_vecs = torch.cat(vec_parts) if vec_parts else None
        return _Scored(items, batch, hidden, by_sentence, conf, label, pairs, pair_vecs, rel_probs)

    @staticmethod
    def _without_overlaps(
        idxs: list[int], spans: Mapping[int, list[int]], conf: Mapping[int, float]
    ) -> list[int]:
        """Greedy by confidence: a span overlapping a more confident kept span is dropped
        (overlapping gold mentions are rare: 17 pairs in the ChisRE train split)."""
        kept: list[int] = []
        for idx in sorted(idxs, key=lambda i: -conf[i]):
            _, start, end = spans[idx]
            if all(end <= spans[k][1] or start >= spans[k][2] for k in kept):
                kept.append(idx)
        return kept

    def predict(self, records: Sequence[Sentence]) -> list[Sentence]:
        """Predictions only: no pair scores are kept. A window of unpunctuated classical text
        holds ~60 entities, so ~3,500 scored pairs, and keeping them (~1 MB a window) for a
        book-length document would cost gigabytes that nothing reads."""
        return [sentence for sentence, _ in self._predict(records, with_scores=False)]

    def _entities(
        self, chunk: list[Sentence], scored: _Scored
    ) -> tuple[dict[int, list[Entity]], dict[int, int]]:
        """Predicted entities per sentence, in text order, and each kept span's entity index."""
        batch = scored.batch
        entity_index: dict[int, int] = {}
        entities: dict[int, list[Entity]] = {b: [] for b in range(len(chunk))}
        for b, idxs in scored.by_sentence.items():
            token_to_char = {}
            text = scored.items[b].text
            for (cs, ce), (ts, te) in zip(text.units, text.unit_tokens, strict=True):
                token_to_char[ts + 1] = cs  # first token of a unit -> its first character
                token_to_char[-(te + 1)] = ce  # end token of a unit -> its end character
            for idx in sorted(idxs, key=lambda i: (int(batch.spans[i, 1]), int(batch.spans[i, 2]))):
                start = token_to_char[int(batch.spans[idx, 1])]
                end = token_to_char[-int(batch.spans[idx, 2])]
                entity_index[idx] = len(entities[b])
                entities[b].append(
                    Entity(
                        self.labels.entity_types[int(scored.label[idx]) - 1],
                        chunk[b].text[start:end],
                        start,
                        end,
                        round(float(scored.conf[idx]), 4),
                    )
                )
        return entities, entity_index

    def predict_with_pair_scores(
        self, records: Sequence[Sentence]
    ) -> list[tuple[Sentence, list[PairScores]]]:
        """Predictions, plus every ordered pair of predicted entities with its probability for
        every relation type (the above-threshold ones are the predicted relations).

        Sentences are batched with others of similar length (little padding) and returned in
        their input order."""
        return self._predict(records, with_scores=True)

    def _predict(
        self, records: Sequence[Sentence], *, with_scores: bool
    ) -> list[tuple[Sentence, list[PairScores]]]:
        by_length = sorted(range(len(records)), key=lambda i: len(records[i].text))
        ordered = [records[i] for i in by_length]
        thresholds = self.thresholds()
        out: list[tuple[Sentence, list[PairScores]]] = []
        for _, chunk in self._batches(ordered):
            scored = self._run(chunk)
            entities, entity_index = self._entities(chunk, scored)
            relations: dict[int, list[Relation]] = {b: [] for b in range(len(chunk))}
            scores: dict[int, list[PairScores]] = {b: [] for b in range(len(chunk))}
            probs, pairs = scored.rel_probs, scored.pairs
            sentence_of = scored.batch.spans[:, 0].tolist()  # span -> its sentence in the chunk
            if with_scores:
                for row, (a, b_) in enumerate(pairs):
                    scores[sentence_of[a]].append(PairScores(entity_index[a], entity_index[b_], probs[row]))
            # the above-threshold (pair, type) cells, pair by pair and types in label order
            for row, rel_type in np.argwhere(probs > thresholds).tolist():
                a, b_ = pairs[row]
                relations[sentence_of[a]].append(
                    Relation(
                        self.labels.relation_types[rel_type],
                        entity_index[a],
                        entity_index[b_],
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
        self,
        predicted: Sequence[tuple[Sentence, list[PairScores]]],
        threshold: float | np.ndarray | None = None,
    ) -> list[Sentence]:
        """The same predictions with relations re-read from the pair scores at another threshold
        (one for every type, or one per type in label order; None: the model's own)."""
        cut = (
            self.thresholds()
            if threshold is None
            else np.broadcast_to(np.asarray(threshold, dtype=np.float32), (len(self.labels.relation_types),))
        )
        out = []
        for sentence, pairs in predicted:
            relations = [
                Relation(self.labels.relation_types[t], p.head, p.tail, round(float(p.probabilities[t]), 4))
                for p in pairs
                for t in (p.probabilities > cut).nonzero()[0]
            ]
            relations.sort(key=lambda r: (r.head, r.tail, -(r.probability or 0)))
            out.append(sentence.with_predictions(sentence.entities, relations))
        return out

    def representations(self, records: Sequence[Sentence]) -> Representations:
        sentence_vecs, pair_rows, pair_vecs = [], [], []
        for lo, chunk in self._batches(records):
            scored = self._run(chunk, keep_pair_vectors=True)
            hidden = scored.hidden.float()
            mask = scored.batch.mask.to(hidden.device).unsqueeze(-1).float()
            sentence_vecs.append(((hidden * mask).sum(1) / mask.sum(1)).cpu().numpy())
            spans = scored.batch.spans
            order = {
                b: sorted(idxs, key=lambda i: (int(spans[i, 1]), int(spans[i, 2])))
                for b, idxs in scored.by_sentence.items()
            }
            for a, b_ in scored.pairs:
                sentence = int(spans[a, 0])
                pair_rows.append((lo + sentence, order[sentence].index(a), order[sentence].index(b_)))
            if scored.pair_vecs is not None:
                pair_vecs.append(scored.pair_vecs.numpy())
        dim = pair_vecs[0].shape[1] if pair_vecs else 0
        return Representations(
            np.concatenate(sentence_vecs) if sentence_vecs else np.zeros((0, 0)),
            pair_rows,
            np.concatenate(pair_vecs) if pair_vecs else np.zeros((0, dim)),
        )
