"""The span-based joint entity and relation model (the SpERT family), with a relation stage that
reads the pair in context.

Every candidate span (a range of units, see `batching`) is classified (an entity type or none)
from the max-pooled encoder states of its tokens, a span-width embedding (in units) and the
sentence vector. Every ordered pair of entity spans is classified multi-label (one sigmoid per
relation type) from both spans' representations, their type embeddings and the max-pooled
context between them (`relation_stage="spans"`, SpERT's design) and, with
`relation_stage="markers"`, from the states of typed levitated markers that read the sentence
with the pair in view (`markers`). With label vectors (the schema's relation names and
definitions, encoded once), a type's score also reads how well the pair matches its
description, so a type with a handful of examples borrows from its words.

Max pooling over ranges uses a sparse table (maxima of every window of 2^k positions), so a
range of any length costs two lookups and no (ranges x length x hidden) tensor is built: memory
stays linear in the text length, for sentences and whole documents alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from slcolm_dspy.slm.batching import Batch
from slcolm_dspy.slm.config import RELATION_STAGES
from slcolm_dspy.slm.markers import LayerStates, PairMarkers, pair_groups

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


@dataclass
class TextContext:
    """What the heads read of a batch's text: the last layer's states (B, L, H) and, for the
    marker stage, the states every marked layer reads."""

    hidden: torch.Tensor
    layers: LayerStates | None = None


class SpanRelationModel(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        n_entity_types: int,
        n_relation_types: int,
        max_span: int,
        width_dim: int = 32,
        dropout: float = 0.1,
        relation_stage: str = "spans",
        label_dim: int = 0,
        marker_layers: int = 4,
    ) -> None:
        super().__init__()
        if relation_stage not in RELATION_STAGES:
            raise ValueError(f"relation stage {relation_stage!r}: expected one of {RELATION_STAGES}")
        if relation_stage == "markers" and not getattr(encoder, "splittable", False):
            raise ValueError("the marker relation stage needs a BERT-style encoder (embeddings + layers)")
        hidden = encoder.hidden_size
        self.encoder = encoder
        self.max_span = max_span
        self.relation_stage = relation_stage
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
        pair_dim = 2 * (span_dim + width_dim) + hidden
        if relation_stage == "markers":
            trained = len(encoder.model.encoder.layer) - encoder.freeze_layers
            marker_layers = min(marker_layers, trained) if marker_layers > 0 else trained
            self.markers = PairMarkers(hidden, n_entity_types, max(max_span, 64), marker_layers)
            pair_dim += 2 * hidden
        self.relation_head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(pair_dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_relation_types),
        )
        if label_dim:
            # one vector per relation type from its name and definition (set by training, saved
            # with the weights); a shared projection turns it into a second weight vector
            self.register_buffer("label_vectors", torch.zeros(n_relation_types, label_dim))
            self.label_projection = nn.Linear(label_dim, hidden)
            nn.init.zeros_(self.label_projection.weight)
            nn.init.zeros_(self.label_projection.bias)
        self.label_dim = label_dim

    def text_states(self, batch: Batch, lower: Callable[[Batch], torch.Tensor] | None = None) -> torch.Tensor:
        """(B, L, H) states of every text position (0: [CLS]), stitched from the windows.
        `lower` supplies the states after the frozen lower layers (cached in training)."""
        return self.encode(batch, lower).hidden

    def encode(self, batch: Batch, lower: Callable[[Batch], torch.Tensor] | None = None) -> TextContext:
        """The text's states; with the marker stage, also every marked layer's input."""
        keep = self.relation_stage == "markers"
        inputs: list[torch.Tensor] = []
        if lower is None:
            if keep:
                rows = self.encoder.upper(
                    self.encoder.lower(batch.rows, batch.row_mask), batch.row_mask, inputs
                )
            else:
                rows = self.encoder(batch.rows, batch.row_mask)
        else:
            rows = self.encoder.upper(lower(batch), batch.row_mask, inputs if keep else None)
        hidden = self._stitch(rows, batch)
        if not keep:
            return TextContext(hidden)
        marked = inputs[len(inputs) - self.markers.layers :]
        states = LayerStates([self._stitch(x, batch) for x in marked], batch.mask.bool())
        return TextContext(hidden, states)

    @staticmethod
    def _stitch(rows: torch.Tensor, batch: Batch) -> torch.Tensor:
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
        context: TextContext,
        pool: RangeMax,
        spans: torch.Tensor,
        widths: torch.Tensor,
        span_vecs: torch.Tensor,
        pairs: torch.Tensor,
        pair_types: torch.Tensor,
    ) -> torch.Tensor:
        """One vector per ordered pair: both spans, their types, the context between them and,
        with the marker stage, the two markers' states."""
        spert = self._span_pair_vectors(pool, spans, span_vecs, pairs, pair_types)
        if self.relation_stage != "markers":
            return spert
        if pairs.shape[0] == 0:
            return spert.new_zeros(0, spert.shape[1] + 2 * self.encoder.hidden_size)
        assert context.layers is not None
        groups = pair_groups(spans, pairs)
        span_types = torch.zeros(spans.shape[0], dtype=torch.long, device=spans.device)
        span_types[pairs[:, 0]] = pair_types[:, 0]
        span_types[pairs[:, 1]] = pair_types[:, 1]
        layers = self.encoder.model.encoder.layer
        marked = layers[len(layers) - self.markers.layers :]
        states = self.markers(marked, context.layers, spans, widths, span_types, groups)
        head_place = torch.where(groups.head_first, 0, 1)
        head = states[groups.group, head_place]
        tail = states[groups.group, 1 - head_place]
        return torch.cat([spert, head.to(spert.dtype), tail.to(spert.dtype)], dim=-1)

    def relation_logits(self, pair_vecs: torch.Tensor) -> torch.Tensor:
        hidden = self.relation_head[:-1](pair_vecs)
        logits = self.relation_head[-1](hidden)
        if self.label_dim:
            weights = self.label_projection(self.label_vectors.to(hidden.dtype))  # (R, hidden)
            logits = logits + hidden @ weights.T
        return logits

    def _span_pair_vectors(
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
        return self.heads(batch, self.encode(batch, lower))

    def heads(self, batch: Batch, context: TextContext) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = context.hidden
        pool = RangeMax(hidden)
        span_vecs = self.span_vectors(pool, batch.spans, batch.widths)
        entity = self.entity_logits(hidden, batch.spans, span_vecs)
        pair_vecs = self.pair_vectors(
            context, pool, batch.spans, batch.widths, span_vecs, batch.pairs, batch.pair_types
        )
        return entity, self.relation_logits(pair_vecs)
