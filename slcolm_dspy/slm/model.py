"""The span-based joint entity and relation model (the SpERT family).

Every candidate span (a range of units, see `batching`) is classified (an entity type or none)
from the max-pooled encoder states of its tokens, a span-width embedding (in units) and the
sentence vector. Every ordered pair of entity spans is classified multi-label (one sigmoid per
relation type) from both spans' representations, their type embeddings and the max-pooled
context between them.

Max pooling over ranges uses a sparse table (maxima of every window of 2^k positions), so a
range of any length costs two lookups and no (ranges x length x hidden) tensor is built: memory
stays linear in the text length, for sentences and whole documents alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from slcolm_dspy.slm.batching import Batch

CHUNK = 4096  # spans or pairs whose vectors are built at once at inference (bounds memory)


class RangeMax:
    """Max over hidden[b, start:end] for many ranges; zeros for empty ranges."""

    def __init__(self, hidden: torch.Tensor) -> None:
        self.levels = [hidden]  # levels[k][b, i] = max(hidden[b, i : i + 2^k])

    def _level(self, k: int) -> torch.Tensor:
        while len(self.levels) <= k:
            prev, step = self.levels[-1], 1 << (len(self.levels) - 1)
            self.levels.append(torch.maximum(prev[:, :-step], prev[:, step:]))
        return self.levels[k]

    def __call__(self, sentence: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        hidden = self.levels[0]
        out = hidden.new_zeros(sentence.shape[0], hidden.shape[-1])
        length = end - start
        valid = length > 0
        if not bool(valid.any()):
            return out
        k_of = torch.zeros_like(length)
        k_of[valid] = torch.floor(torch.log2(length[valid].float())).long()
        for k in torch.unique(k_of[valid]).tolist():
            chosen = (valid & (k_of == k)).nonzero().squeeze(1)
            level = self._level(k)
            b, s, e = sentence[chosen], start[chosen], end[chosen]
            out[chosen] = torch.maximum(level[b, s], level[b, e - (1 << k)])
        return out


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

    def text_states(self, batch: Batch, lower: Callable[[Batch], torch.Tensor] | None = None) -> torch.Tensor:
        """(B, L, H) states of every text position (0: [CLS]), stitched from the windows.
        `lower` supplies the states after the frozen lower layers (cached in training)."""
        if lower is None:
            rows = self.encoder(batch.rows, batch.row_mask)
        else:
            rows = self.encoder.upper(lower(batch), batch.row_mask)
        flat = rows.reshape(-1, rows.shape[-1])
        return flat[batch.gather] * batch.mask.unsqueeze(-1).to(rows.dtype)

    def span_vectors(self, pool: RangeMax, spans: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        widths = widths.clamp(max=self.width.num_embeddings - 1)
        return torch.cat([pool(spans[:, 0], spans[:, 1], spans[:, 2]), self.width(widths)], dim=-1)

    def entity_logits(
        self, hidden: torch.Tensor, spans: torch.Tensor, span_vecs: torch.Tensor
    ) -> torch.Tensor:
        sentence_vec = hidden[spans[:, 0], 0]  # the [CLS] state
        return self.entity_head(torch.cat([span_vecs, sentence_vec], dim=-1))

    def pair_vectors(
        self,
        pool: RangeMax,
        spans: torch.Tensor,
        span_vecs: torch.Tensor,
        pairs: torch.Tensor,
        pair_types: torch.Tensor,
    ) -> torch.Tensor:
        head, tail = spans[pairs[:, 0]], spans[pairs[:, 1]]
        # context: the tokens strictly between the two spans, whichever comes first
        start = torch.minimum(head[:, 2], tail[:, 2])
        end = torch.maximum(head[:, 1], tail[:, 1])
        context = pool(head[:, 0], start, end)
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

    def forward(
        self, batch: Batch, lower: Callable[[Batch], torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Entity logits for every span and relation logits for every pair."""
        return self.heads(batch, self.text_states(batch, lower))

    def heads(self, batch: Batch, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pool = RangeMax(hidden)
        span_vecs = self.span_vectors(pool, batch.spans, batch.widths)
        entity = self.entity_logits(hidden, batch.spans, span_vecs)
        pair_vecs = self.pair_vectors(pool, batch.spans, span_vecs, batch.pairs, batch.pair_types)
        return entity, self.relation_head(pair_vecs)
