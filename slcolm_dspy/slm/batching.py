"""From records to tensors: span candidates, negative sampling, padding."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.slm.model import Batch
from slcolm_dspy.slm.vocab import CharVocab


@dataclass(frozen=True)
class Labels:
    """Index spaces of the classifiers: 0 is "no entity"; relation types have no "none"."""

    entity_types: tuple[str, ...]
    relation_types: tuple[str, ...]

    def entity_id(self, code: str | None) -> int:
        return self.entity_types.index(code) + 1 if code in self.entity_types else 0


@dataclass
class Encoded:
    ids: list[int]
    spans: list[tuple[int, int]]  # character offsets, end exclusive
    span_labels: list[int] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)  # indices into spans
    pair_labels: list[list[int]] = field(default_factory=list)  # relation type ids per pair


def candidate_spans(n_chars: int, max_span: int) -> list[tuple[int, int]]:
    return [(s, e) for s in range(n_chars) for e in range(s + 1, min(n_chars, s + max_span) + 1)]


def usable_chars(sentence: Sentence, max_tokens: int) -> int:
    """Characters that fit the encoder beside [CLS] and [SEP]; longer text is cut."""
    return min(len(sentence.text), max_tokens - 2)


def encode_for_training(
    sentence: Sentence,
    vocab: CharVocab,
    labels: Labels,
    max_span: int,
    max_tokens: int,
    rng: random.Random,
    neg_spans: int,
    neg_pairs: int,
    text_form: str | None = None,
) -> Encoded:
    n = usable_chars(sentence, max_tokens)
    gold: dict[tuple[int, int], int] = {}
    entity_of: dict[int, tuple[int, int]] = {}
    for i, ent in enumerate(sentence.entities):
        if ent.grounded and (ent.end or 0) <= n:
            key = (ent.start or 0, ent.end or 0)
            gold.setdefault(key, labels.entity_id(ent.type))
            entity_of[i] = key
    negatives = [s for s in candidate_spans(n, max_span) if s not in gold]
    if neg_spans and len(negatives) > neg_spans:
        negatives = rng.sample(negatives, neg_spans)
    spans = [*gold, *negatives]
    span_labels = [*gold.values(), *([0] * len(negatives))]
    position = {s: i for i, s in enumerate(spans)}
    relations: dict[tuple[int, int], list[int]] = {}
    for rel in sentence.relations:
        if rel.head in entity_of and rel.tail in entity_of and entity_of[rel.head] != entity_of[rel.tail]:
            key = (position[entity_of[rel.head]], position[entity_of[rel.tail]])
            relations.setdefault(key, []).append(labels.relation_types.index(rel.type))
    gold_idx = [position[s] for s in gold]
    others = [(a, b) for a in gold_idx for b in gold_idx if a != b and (a, b) not in relations]
    if neg_pairs and len(others) > neg_pairs:
        others = rng.sample(others, neg_pairs)
    pairs = [*relations, *others]
    pair_labels = [*relations.values(), *([[]] * len(others))]
    ids = vocab.encode(sentence.form(text_form)[:n])
    return Encoded(ids, spans, span_labels, pairs, pair_labels)


def encode_for_inference(
    sentence: Sentence, vocab: CharVocab, max_span: int, max_tokens: int, text_form: str | None = None
) -> Encoded:
    """`text_form` names the form of the text the model reads (a variant aligned character by
    character with the text, so offsets are the same); records without it give their text."""
    n = usable_chars(sentence, max_tokens)
    return Encoded(vocab.encode(sentence.form(text_form)[:n]), candidate_spans(n, max_span))


def collate(items: list[Encoded], n_relation_types: int, with_labels: bool) -> Batch:
    width = max(len(x.ids) for x in items)
    ids = torch.zeros(len(items), width, dtype=torch.long)
    mask = torch.zeros(len(items), width, dtype=torch.long)
    spans, pairs, span_labels, pair_types, pair_rows = [], [], [], [], []
    for b, item in enumerate(items):
        ids[b, : len(item.ids)] = torch.tensor(item.ids)
        mask[b, : len(item.ids)] = 1
        offset = len(spans)
        spans.extend((b, s + 1, e + 1) for s, e in item.spans)  # +1: token 0 is [CLS]
        if with_labels:
            span_labels.extend(item.span_labels)
            for (h, t), rel_ids in zip(item.pairs, item.pair_labels, strict=True):
                pairs.append((offset + h, offset + t))
                pair_types.append((item.span_labels[h], item.span_labels[t]))
                pair_rows.append(rel_ids)
    batch = Batch(
        ids=ids,
        mask=mask,
        spans=torch.tensor(spans, dtype=torch.long).reshape(-1, 3),
        pairs=torch.tensor(pairs, dtype=torch.long).reshape(-1, 2),
        pair_types=torch.tensor(pair_types, dtype=torch.long).reshape(-1, 2),
    )
    if with_labels:
        batch.span_labels = torch.tensor(span_labels, dtype=torch.long)
        multi_hot = torch.zeros(len(pair_rows), n_relation_types)
        for row, rel_ids in enumerate(pair_rows):
            multi_hot[row, rel_ids] = 1.0
        batch.pair_labels = multi_hot
    return batch
