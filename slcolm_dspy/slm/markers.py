"""The relation stage that reads the pair in context: packed levitated markers (PURE's batched
approximation, Zhong & Chen 2021; PL-Marker, Ye et al. 2022).

Every unordered pair of entities to classify gets two marker tokens, one per entity, typed by
the entity's type and its place in the pair (first or second in the text), with a width
embedding for how far the entity runs. Markers go through the encoder's top layers beside the
text: each marker attends to every text token and to its partner, and nothing attends to a
marker, so the text's states are exactly those of the plain pass. All pairs of a batch are
classified in one pass, and a marker costs one token of attention and feed-forward work per
marked layer, never a re-encoding of the sentence.

A marker enters the first marked layer as the text's state at its entity's first token (which
carries the token and its position) plus its type and width embeddings; only the top layers
carry markers (`marker_layers`), since on ChisRE a sentence has about as many pair markers as
tokens and every marked layer costs about as much as a text layer.

The text's per-layer states come from the plain pass (`LayerStates`), so only the markers are
computed here: queries, keys and values for markers, keys and values for the text, and the
feed-forward block for markers alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class LayerStates:
    """The text's states as every marked layer reads them, in text positions (B, L, H): `inputs[k]`
    enters marked layer k; `mask` (B, L) is true for real tokens."""

    inputs: list[torch.Tensor]
    mask: torch.Tensor


@dataclass
class PairGroups:
    """The unordered pairs behind a list of ordered pairs: `first` and `second` (G,) are span
    indices (first in the text first), `group` (P,) the group of each ordered pair and
    `head_first` (P,) whether its head is the group's first span."""

    first: torch.Tensor
    second: torch.Tensor
    group: torch.Tensor
    head_first: torch.Tensor


def pair_groups(spans: torch.Tensor, pairs: torch.Tensor) -> PairGroups:
    """Ordered pairs (a, b) and (b, a) of the same two spans share one group (one pair of
    markers); spans are compared by their place in the text, so duplicate span rows merge too."""
    head, tail = spans[pairs[:, 0]], spans[pairs[:, 1]]
    # position key: sentence, start, end; the smaller key is the group's first span
    width = int(spans[:, 1:].max().item()) + 2 if spans.numel() else 2
    key_h = (head[:, 0] * width + head[:, 1]) * width + head[:, 2]
    key_t = (tail[:, 0] * width + tail[:, 1]) * width + tail[:, 2]
    head_first = key_h <= key_t
    first = torch.where(head_first, pairs[:, 0], pairs[:, 1])
    second = torch.where(head_first, pairs[:, 1], pairs[:, 0])
    code = torch.stack([torch.minimum(key_h, key_t), torch.maximum(key_h, key_t)], dim=1)
    unique, group = torch.unique(code, dim=0, return_inverse=True)
    # one representative ordered pair per group gives the group's span indices
    rep = torch.full((unique.shape[0],), -1, dtype=torch.long, device=pairs.device)
    rep.scatter_(0, group, torch.arange(pairs.shape[0], device=pairs.device))
    return PairGroups(first[rep], second[rep], group, head_first)


class PairMarkers(nn.Module):
    """Marker embeddings and the markers' pass through the encoder's layers."""

    def __init__(self, hidden: int, n_entity_types: int, max_width: int, layers: int) -> None:
        super().__init__()
        # (place in the pair: first/second) x (entity type, 0 = none)
        self.kind = nn.Embedding(2 * (n_entity_types + 1), hidden)
        self.width = nn.Embedding(max_width + 1, hidden)
        nn.init.normal_(self.kind.weight, std=0.02)
        nn.init.normal_(self.width.weight, std=0.02)
        self.n_kinds = n_entity_types + 1
        self.layers = layers  # how many of the encoder's top layers carry markers

    def forward(
        self,
        layers: nn.ModuleList,
        text: LayerStates,
        spans: torch.Tensor,
        widths: torch.Tensor,
        span_types: torch.Tensor,
        groups: PairGroups,
    ) -> torch.Tensor:
        """(G, 2, H): the states of each group's two markers after the last layer."""
        n = groups.first.shape[0]
        members = torch.stack([groups.first, groups.second], dim=1)  # (G, 2) span indices
        sentence = spans[members[:, 0], 0]  # (G,)
        starts = spans[members, 1]  # (G, 2) text positions of the entities' first tokens
        place = torch.arange(2, device=spans.device).expand(n, 2)
        kind = place * self.n_kinds + span_types[members]
        width = widths[members].clamp(max=self.width.num_embeddings - 1)
        first_tokens = text.inputs[0][sentence.unsqueeze(1), starts]  # (G, 2, H)
        states = first_tokens + (self.kind(kind) + self.width(width)).to(first_tokens.dtype)
        for layer, text_in in zip(layers, text.inputs, strict=True):
            states = _marker_layer(layer, states, text_in, text.mask, sentence)
        return states


def _marker_layer(
    layer: nn.Module,
    markers: torch.Tensor,
    text: torch.Tensor,
    text_mask: torch.Tensor,
    sentence: torch.Tensor,
) -> torch.Tensor:
    """One BERT-style layer for markers (G, 2, H) reading their sentence's text (B, L, H) and
    their partner. Groups are laid out per sentence (padded) for the attention only."""
    attention = layer.attention.self
    heads, size = attention.num_attention_heads, attention.attention_head_size
    n_groups = markers.shape[0]
    b, length, hidden = text.shape
    q = attention.query(markers).view(n_groups, 2, heads, size)
    k_m = attention.key(markers).view(n_groups, 2, heads, size)
    v_m = attention.value(markers).view(n_groups, 2, heads, size)
    k_t = attention.key(text).view(b, length, heads, size)
    v_t = attention.value(text).view(b, length, heads, size)
    scale = size**-0.5
    # scores against the text, computed per sentence: groups are scattered into (B, slots)
    slot = _slots(sentence, b)
    slots = int(slot.max().item()) + 1 if n_groups else 1
    q_pad = q.new_zeros(b, slots, 2, heads, size)
    q_pad[sentence, slot] = q
    s_text = torch.einsum("bgihd,blhd->bgihl", q_pad, k_t)[sentence, slot] * scale  # (G, 2, h, L)
    s_text = s_text.masked_fill(~text_mask[sentence].view(n_groups, 1, 1, length), float("-inf"))
    s_pair = torch.einsum("gihd,gjhd->gihj", q, k_m) * scale  # (G, 2, h, 2)
    probs = F.softmax(torch.cat([s_text, s_pair], dim=-1).float(), dim=-1).to(q.dtype)
    p_text, p_pair = probs[..., :length], probs[..., length:]
    p_pad = probs.new_zeros(b, slots, 2, heads, length)
    p_pad[sentence, slot] = p_text
    context = torch.einsum("bgihl,blhd->bgihd", p_pad, v_t)[sentence, slot]
    context = context + torch.einsum("gihj,gjhd->gihd", p_pair, v_m)
    attended = layer.attention.output(context.reshape(n_groups, 2, hidden), markers)
    return layer.output(layer.intermediate(attended), attended)


def _slots(sentence: torch.Tensor, n_sentences: int) -> torch.Tensor:
    """Each group's rank among the groups of its sentence (0, 1, ...)."""
    if sentence.numel() == 0:
        return sentence
    order = torch.argsort(sentence, stable=True)
    sorted_sentence = sentence[order]
    counts = torch.bincount(sorted_sentence, minlength=n_sentences)
    first = torch.cumsum(counts, 0) - counts
    rank_sorted = torch.arange(sentence.numel(), device=sentence.device) - first[sorted_sentence]
    slot = torch.empty_like(sentence)
    slot[order] = rank_sorted
    return slot
