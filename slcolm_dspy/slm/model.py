"""The span-based joint entity and relation model (the SpERT family).

Every span up to `max_span` characters is classified (an entity type or none) from the max-pooled
encoder states of its characters, a span-width embedding and the sentence vector. Every ordered
pair of entity spans is classified multi-label (one sigmoid per relation type) from both spans'
representations, their type embeddings and the max-pooled context between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PAIR_CHUNK = 1024  # pairs whose context is pooled at once (bounds memory on long sentences)


@dataclass
class Batch:
    ids: torch.Tensor  # (B, T) token rows; token t+1 is character t
    mask: torch.Tensor  # (B, T)
    spans: torch.Tensor  # (N, 3): sentence, first token, end token (exclusive)
    pairs: torch.Tensor  # (R, 2): indices into spans (head, tail)
    pair_types: torch.Tensor  # (R, 2): entity type ids of head and tail (0 = none)
    span_labels: torch.Tensor | None = None  # (N,) entity type ids, 0 = none
    pair_labels: torch.Tensor | None = None  # (R, relation types) multi-hot


def span_max_pool(hidden: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Max over hidden[b, start:end] for each span, by growing windows one length at a time:
    O(T * max length) work and no (spans x T x H) tensor."""
    lengths = spans[:, 2] - spans[:, 1]
    out = hidden.new_zeros(spans.shape[0], hidden.shape[-1])
    if spans.shape[0] == 0:
        return out
    window = hidden
    for length in range(1, int(lengths.max()) + 1):
        if length > 1:
            window = torch.maximum(window[:, :-1], hidden[:, length - 1 :])
        chosen = (lengths == length).nonzero().squeeze(1)
        if chosen.numel():
            out[chosen] = window[spans[chosen, 0], spans[chosen, 1]]
    return out


def range_max_pool(
    hidden: torch.Tensor, sentence: torch.Tensor, start: torch.Tensor, end: torch.Tensor
) -> torch.Tensor:
    """Max over hidden[sentence, start:end] for arbitrary ranges; zeros for empty ones."""
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    parts = []
    for lo in range(0, sentence.shape[0], PAIR_CHUNK):
        sl = slice(lo, lo + PAIR_CHUNK)
        inside = (positions[None, :] >= start[sl, None]) & (positions[None, :] < end[sl, None])
        states = hidden[sentence[sl]].masked_fill(~inside[..., None], -1e4)
        pooled = states.max(dim=1).values
        parts.append(torch.where(inside.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled)))
    if not parts:
        return hidden.new_zeros(0, hidden.shape[-1])
    return torch.cat(parts)


class SpanRelationModel(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        n_entity_types: int,
        n_relation_types: int,
        max_span: int,
        width_dim: int = 32,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        hidden = encoder.hidden_size
        self.encoder = encoder
        self.max_span = max_span
        self.width = nn.Embedding(max(max_span, 64) + 1, width_dim)
        self.entity_type = nn.Embedding(n_entity_types + 1, width_dim)
        span_dim = hidden + width_dim
        self.entity_head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(span_dim + hidden, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_entity_types + 1),
        )
        self.relation_head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * (span_dim + width_dim) + hidden, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_relation_types),
        )

    def span_vectors(self, hidden: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        widths = (spans[:, 2] - spans[:, 1]).clamp(max=self.width.num_embeddings - 1)
        return torch.cat([span_max_pool(hidden, spans), self.width(widths)], dim=-1)

    def entity_logits(
        self, hidden: torch.Tensor, spans: torch.Tensor, span_vecs: torch.Tensor
    ) -> torch.Tensor:
        sentence_vec = hidden[spans[:, 0], 0]  # the [CLS] state
        return self.entity_head(torch.cat([span_vecs, sentence_vec], dim=-1))

    def pair_vectors(
        self,
        hidden: torch.Tensor,
        spans: torch.Tensor,
        span_vecs: torch.Tensor,
        pairs: torch.Tensor,
        pair_types: torch.Tensor,
    ) -> torch.Tensor:
        head, tail = spans[pairs[:, 0]], spans[pairs[:, 1]]
        # context: the characters strictly between the two spans, whichever comes first
        start = torch.minimum(head[:, 2], tail[:, 2])
        end = torch.maximum(head[:, 1], tail[:, 1])
        context = range_max_pool(hidden, head[:, 0], start, end)
        return torch.cat(
            [
                span_vecs[pairs[:, 0]],
                self.entity_type(pair_types[:, 0]),
                span_vecs[pairs[:, 1]],
                self.entity_type(pair_types[:, 1]),
                context,
            ],
            dim=-1,
        )

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Entity logits for every span and relation logits for every pair."""
        hidden = self.encoder(batch.ids, batch.mask)
        span_vecs = self.span_vectors(hidden, batch.spans)
        entity = self.entity_logits(hidden, batch.spans, span_vecs)
        pair_vecs = self.pair_vectors(hidden, batch.spans, span_vecs, batch.pairs, batch.pair_types)
        return entity, self.relation_head(pair_vecs)
