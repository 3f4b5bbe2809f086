"""What lets rare relation types learn from more than their few examples.

- Label vectors: each type's name and definition (the schema's words), encoded once by the
  pretrained encoder, so a pair is also scored against its description (`SpanRelationModel`).
- Logit adjustment (Menon et al. 2021): each type's log-odds among training pairs (centred on
  the median type's), scaled by tau, is added to its logit in the loss only; a rare type then
  needs a larger margin to be right in training, and at inference (no offset) it is predicted
  more readily.
- Entity-type-pair constraints: the (head type, tail type) combinations each relation type has
  in train; offered on dev after training and kept only where they help.
- Weight averaging: an exponential moving average of the weights, scored on dev beside the
  raw weights every epoch.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.slm.batching import Example
from slcolm_dspy.slm.units import UnitVocab


def label_texts(schema: Schema) -> list[str]:
    """One text per relation type, in the schema's order: its name, and its definition where the
    schema has one (names alone are still distinct words to the encoder)."""
    texts = []
    for name in schema.relation_types:
        words = name.replace("_", " ")
        definition = schema.definitions.get(name)
        texts.append(f"{words}: {definition}" if definition else words)
    return texts


@torch.no_grad()
def encode_labels(encoder: nn.Module, vocab: UnitVocab, texts: Sequence[str]) -> torch.Tensor:
    """(types, H): the mean of the encoder's last states over each text's tokens, L2-normalised
    (the pretrained encoder is a sentence embedder trained on mean pooling)."""
    was_training = encoder.training
    encoder.eval()
    rows = []
    limit = encoder.max_length - 2
    for text in texts:
        ids = [vocab.cls_id, *vocab.encode(text).ids[:limit], vocab.sep_id]
        tokens = torch.tensor([ids])
        states = encoder(tokens, torch.ones_like(tokens))[0, 1:-1].float()
        rows.append(nn.functional.normalize(states.mean(0), dim=0))
    encoder.train(was_training)
    return torch.stack(rows)


def logit_offsets(
    examples: Sequence[Example], n_types: int, neg_pairs: int, tau: float
) -> torch.Tensor | None:
    """tau x (log-odds of each type among the pairs an epoch trains on - their median over the
    types train has), or None when tau is 0. The pairs are every related pair and up to
    `neg_pairs` unrelated pairs of gold entities per sentence.

    Centred on the median: with a sigmoid per type, every type is rare against "no relation",
    and uncentred offsets (about -9 for a type with 15 of 100,000 pairs at tau 1) pushed every
    type over any threshold at inference (dev micro F1 0.8 after the first ChisRE epoch). Centred,
    a type ten times rarer than the median type is lifted by 2.3 tau at inference and a type ten
    times more frequent lowered as much."""
    if not tau:
        return None
    positives = Counter(t for e in examples for ids in e.gold_pairs.values() for t in ids)
    pairs = 0
    for e in examples:
        n = len(e.gold_spans)
        unrelated = max(0, n * (n - 1) - len(e.gold_pairs))
        pairs += len(e.gold_pairs) + (min(unrelated, neg_pairs) if neg_pairs else unrelated)
    pairs = max(pairs, 1)
    log_odds = []
    for t in range(n_types):
        share = min(max(positives[t], 0.5) / pairs, 0.5)  # an unseen type counts as half a pair
        log_odds.append(math.log(share / (1 - share)))
    seen = sorted(v for t, v in enumerate(log_odds) if positives[t])
    centre = seen[len(seen) // 2] if seen else 0.0
    return torch.tensor([tau * (v - centre) for v in log_odds])


def type_pairs(records: Iterable[Sentence], schema: Schema) -> list[list[str]]:
    """The (head entity type, tail entity type, relation type) triples seen in `records`, both
    orders for direction-insensitive types, sorted."""
    seen: set[tuple[str, str, str]] = set()
    symmetric = set(schema.direction_insensitive)
    for record in records:
        for rel in record.relations:
            head, tail = record.entities[rel.head].type, record.entities[rel.tail].type
            seen.add((head, tail, rel.type))
            if rel.type in symmetric:
                seen.add((tail, head, rel.type))
    return [list(t) for t in sorted(seen)]


class WeightAverage:
    """An exponential moving average of a model's trainable weights, swapped in to be scored."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - self.decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's weights and the average (call again to swap back)."""
        for p, s in zip(self.params, self.shadow, strict=True):
            held = p.detach().clone()
            p.copy_(s)
            s.copy_(held)
