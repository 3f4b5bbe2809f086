"""From records to tensors: units, span candidates, negative sampling, encoder windows.

Spans are ranges of units (characters or words, see `units`). Candidates are bounded by a
maximum width in units and never start or end on whitespace (units contain none) or on a
punctuation unit that no training entity starts or ends with. A text longer than the encoder's
positions is read in overlapping windows; each token's state comes from the window in which it
sits farthest from an edge, so spans and pairs that cross a window edge see ordinary states.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.slm.units import TextUnits, UnitVocab, is_punctuation

WINDOW_OVERLAP = 128  # tokens two consecutive windows share


@dataclass(frozen=True)
class Labels:
    """Index spaces of the classifiers: 0 is "no entity"; relation types have no "none"."""

    entity_types: tuple[str, ...]
    relation_types: tuple[str, ...]

    def entity_id(self, code: str | None) -> int:
        return self.entity_types.index(code) + 1 if code in self.entity_types else 0


@dataclass(frozen=True)
class SpanRules:
    """Which unit ranges are span candidates: at most `max_width` units, and a punctuation unit
    may open (close) a span only if its text is in `open_punct` (`close_punct`)."""

    max_width: int
    open_punct: frozenset[str] = frozenset()
    close_punct: frozenset[str] = frozenset()

    def candidates(self, text: str, units: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        opens, closes = [], []
        for start, end in units:
            piece = text[start:end]
            punct = is_punctuation(piece)
            opens.append(not punct or piece in self.open_punct)
            closes.append(not punct or piece in self.close_punct)
        n = len(units)
        return [
            (a, b)
            for a in range(n)
            if opens[a]
            for b in range(a + 1, min(n, a + self.max_width) + 1)
            if closes[b - 1]
        ]

    def to_json(self) -> dict:
        return {
            "max_width": self.max_width,
            "open_punct": sorted(self.open_punct),
            "close_punct": sorted(self.close_punct),
        }

    @classmethod
    def from_json(cls, data: dict) -> SpanRules:
        return cls(int(data["max_width"]), frozenset(data["open_punct"]), frozenset(data["close_punct"]))


@dataclass
class BoundaryReport:
    """How the training entities fit the units: those that cannot be spans are counted, never
    dropped silently."""

    entities: int = 0
    off_boundary: int = 0  # start or end falls inside a unit
    too_wide: int = 0  # wider than the maximum span width
    bad_edge: int = 0  # opens or closes on punctuation no other entity does
    examples: list[str] = field(default_factory=list)

    def note(self, kind: str, sentence: Sentence, start: int, end: int) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 5:
            self.examples.append(f"{sentence.id}: {sentence.text[start:end]!r} ({kind.replace('_', ' ')})")

    def to_json(self) -> dict:
        return {
            "entities": self.entities,
            "off_boundary": self.off_boundary,
            "too_wide": self.too_wide,
            "bad_edge": self.bad_edge,
            "examples": self.examples,
        }


def unit_index(units: Sequence[tuple[int, int]]) -> tuple[dict[int, int], dict[int, int]]:
    """Character offset -> unit index, for unit starts and for unit ends."""
    return {s: i for i, (s, _) in enumerate(units)}, {e: i for i, (_, e) in enumerate(units)}


def derive_span_rules(
    records: Sequence[Sentence], encoded: Sequence[TextUnits], percentile: float
) -> tuple[SpanRules, dict]:
    """Span rules from the training data: the maximum width is the `percentile` of entity widths
    in units; punctuation may open/close a span where some entity does so."""
    widths: list[int] = []
    opens: Counter[str] = Counter()
    closes: Counter[str] = Counter()
    for record, enc in zip(records, encoded, strict=True):
        starts, ends = unit_index(enc.units)
        for ent in record.entities:
            if not ent.grounded or ent.start not in starts or ent.end not in ends:
                continue
            a, b = starts[ent.start], ends[ent.end] + 1
            if b <= a:
                continue
            widths.append(b - a)
            first = record.text[slice(*enc.units[a])]
            last = record.text[slice(*enc.units[b - 1])]
            if is_punctuation(first):
                opens[first] += 1
            if is_punctuation(last):
                closes[last] += 1
    widths.sort()
    if not widths:
        return SpanRules(max_width=1), {"max_width": 1, "longer": 0, "entities": 0}
    cut = widths[min(len(widths) - 1, int(percentile / 100 * len(widths)))]
    rules = SpanRules(cut, frozenset(opens), frozenset(closes))
    stats = {
        "max_width": cut,
        "percentile": percentile,
        "longest": widths[-1],
        "longer": sum(w > cut for w in widths),
        "entities": len(widths),
        "open_punct": dict(opens),
        "close_punct": dict(closes),
    }
    return rules, stats


@dataclass
class Example:
    """One sentence, prepared once: its tokens and units, candidate spans and gold labels.
    Negatives are sampled from it anew every epoch."""

    key: int
    text: TextUnits
    candidates: list[tuple[int, int]]
    gold_spans: dict[tuple[int, int], int]  # unit range -> entity type id
    gold_pairs: dict[tuple[tuple[int, int], tuple[int, int]], list[int]]  # -> relation type ids


def prepare_example(
    key: int,
    sentence: Sentence,
    vocab: UnitVocab,
    labels: Labels,
    rules: SpanRules,
    text_form: str | None,
    report: BoundaryReport | None = None,
) -> Example:
    encoded = vocab.encode(sentence.form(text_form))
    starts, ends = unit_index(encoded.units)
    gold: dict[tuple[int, int], int] = {}
    span_of: dict[int, tuple[int, int]] = {}
    candidates = rules.candidates(sentence.text, encoded.units)
    allowed = set(candidates)
    for i, ent in enumerate(sentence.entities):
        if not ent.grounded:
            continue
        start, end = ent.start or 0, ent.end or 0
        if report is not None:
            report.entities += 1
        if start not in starts or end not in ends or ends[end] < starts[start]:
            if report is not None:
                report.note("off_boundary", sentence, start, end)
            continue
        key_span = (starts[start], ends[end] + 1)
        if key_span[1] - key_span[0] > rules.max_width:
            if report is not None:
                report.note("too_wide", sentence, start, end)
            continue
        if key_span not in allowed and report is not None:
            report.note("bad_edge", sentence, start, end)  # kept as a positive all the same
        gold.setdefault(key_span, labels.entity_id(ent.type))
        span_of[i] = key_span
    pairs: dict[tuple[tuple[int, int], tuple[int, int]], list[int]] = {}
    for rel in sentence.relations:
        if rel.head in span_of and rel.tail in span_of and span_of[rel.head] != span_of[rel.tail]:
            pairs.setdefault((span_of[rel.head], span_of[rel.tail]), []).append(
                labels.relation_types.index(rel.type)
            )
    return Example(key, encoded, [c for c in candidates if c not in gold], gold, pairs)


@dataclass
class Encoded:
    """What one batch row needs: tokens, units, the spans to classify (unit ranges) and, in
    training, their labels and the pairs to classify."""

    key: int | None
    text: TextUnits
    spans: list[tuple[int, int]]
    span_labels: list[int] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)  # indices into spans
    pair_labels: list[list[int]] = field(default_factory=list)  # relation type ids per pair


def sample_training_item(example: Example, rng: random.Random, neg_spans: int, neg_pairs: int) -> Encoded:
    negatives = example.candidates
    if neg_spans and len(negatives) > neg_spans:
        negatives = rng.sample(negatives, neg_spans)
    spans = [*example.gold_spans, *negatives]
    span_labels = [*example.gold_spans.values(), *([0] * len(negatives))]
    position = {s: i for i, s in enumerate(spans)}
    related = {(position[h], position[t]): ids for (h, t), ids in example.gold_pairs.items()}
    gold_idx = range(len(example.gold_spans))
    others = [(a, b) for a in gold_idx for b in gold_idx if a != b and (a, b) not in related]
    if neg_pairs and len(others) > neg_pairs:
        others = rng.sample(others, neg_pairs)
    return Encoded(
        example.key,
        example.text,
        spans,
        span_labels,
        [*related, *others],
        [*related.values(), *([[]] * len(others))],
    )


def encode_for_inference(
    sentence: Sentence, vocab: UnitVocab, rules: SpanRules, text_form: str | None = None
) -> Encoded:
    """`text_form` names the form of the text the model reads (a variant aligned character by
    character with the text, so offsets are the same); records without it give their text."""
    encoded = vocab.encode(sentence.form(text_form))
    return Encoded(None, encoded, rules.candidates(sentence.text, encoded.units))


def windows(text: TextUnits, size: int, overlap: int = WINDOW_OVERLAP) -> list[tuple[int, int]]:
    """Token ranges of at most `size` tokens covering the text, consecutive ones sharing about
    `overlap` tokens; every window after the first starts at a unit's first token."""
    n = len(text.ids)
    if n <= size:
        return [(0, n)]
    overlap = min(overlap, size // 4)
    starts = [lo for lo, _ in text.unit_tokens]
    out = [(0, size)]
    while out[-1][1] < n:
        lo_prev, hi_prev = out[-1]
        target = hi_prev - overlap
        lo = max((s for s in starts if lo_prev < s <= target), default=min(target, hi_prev))
        lo = max(lo, lo_prev + 1)
        out.append((lo, min(n, lo + size)))
    return out


def window_owner(spans: list[tuple[int, int]], n: int) -> list[int]:
    """For each token, the window that owns its state: consecutive windows hand over in the
    middle of their overlap."""
    owner = [0] * n
    for w in range(1, len(spans)):
        cut = (spans[w][0] + spans[w - 1][1]) // 2
        for t in range(cut, n):
            owner[t] = w
    return owner


@dataclass
class Batch:
    rows: torch.Tensor  # (R, W) encoder windows: [CLS] tokens [SEP]
    row_mask: torch.Tensor  # (R, W)
    row_keys: list[tuple[int, int] | None]  # (example key, window) for cached lower states
    gather: torch.Tensor  # (B, L) flat index into the (R * W) window states; 0 = the text's [CLS]
    mask: torch.Tensor  # (B, L) 1 for [CLS] and every token
    spans: torch.Tensor  # (N, 3): sentence, first position, end position (exclusive), in gather space
    widths: torch.Tensor  # (N,) span width in units
    pairs: torch.Tensor  # (P, 2): indices into spans (head, tail)
    pair_types: torch.Tensor  # (P, 2): entity type ids of head and tail (0 = none)
    span_labels: torch.Tensor | None = None  # (N,) entity type ids, 0 = none
    pair_labels: torch.Tensor | None = None  # (P, relation types) multi-hot

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with every tensor on `device` (the SLM on a GPU); row keys as they are."""
        moved = {
            f.name: value.to(device) if isinstance(value := getattr(self, f.name), torch.Tensor) else value
            for f in dataclasses.fields(self)
        }
        return Batch(**moved)


def collate(
    items: list[Encoded], vocab: UnitVocab, n_relation_types: int, max_tokens: int, with_labels: bool
) -> Batch:
    """Windows, the gather map from window states to text positions, spans and pairs."""
    size = max(1, max_tokens - 2)
    row_tokens: list[list[int]] = []
    row_keys: list[tuple[int, int] | None] = []
    gathers: list[list[int]] = []
    for item in items:
        ids = item.text.ids
        spans_w = windows(item.text, size)
        owner = window_owner(spans_w, len(ids))
        first_row = len(row_tokens)
        for w, (lo, hi) in enumerate(spans_w):
            row_tokens.append([vocab.cls_id, *ids[lo:hi], vocab.sep_id])
            row_keys.append(None if item.key is None else (item.key, w))
        gathers.append(
            [(first_row, 0), *((first_row + owner[t], t - spans_w[owner[t]][0] + 1) for t in range(len(ids)))]
        )
    width = max(len(r) for r in row_tokens)
    rows = torch.zeros(len(row_tokens), width, dtype=torch.long)
    row_mask = torch.zeros(len(row_tokens), width, dtype=torch.long)
    for r, tokens in enumerate(row_tokens):
        rows[r, : len(tokens)] = torch.tensor(tokens)
        row_mask[r, : len(tokens)] = 1
    length = max(len(g) for g in gathers)
    gather = torch.zeros(len(items), length, dtype=torch.long)
    mask = torch.zeros(len(items), length, dtype=torch.long)
    for b, places in enumerate(gathers):
        gather[b, : len(places)] = torch.tensor([r * width + c for r, c in places])
        mask[b, : len(places)] = 1
    spans, widths, pairs, span_labels, pair_types, pair_rows = [], [], [], [], [], []
    for b, item in enumerate(items):
        offset = len(spans)
        unit_tokens = item.text.unit_tokens
        for a, e in item.spans:
            # +1: position 0 holds the [CLS] state
            spans.append((b, unit_tokens[a][0] + 1, unit_tokens[e - 1][1] + 1))
            widths.append(e - a)
        if with_labels:
            span_labels.extend(item.span_labels)
            for (h, t), rel_ids in zip(item.pairs, item.pair_labels, strict=True):
                pairs.append((offset + h, offset + t))
                pair_types.append((item.span_labels[h], item.span_labels[t]))
                pair_rows.append(rel_ids)
    batch = Batch(
        rows=rows,
        row_mask=row_mask,
        row_keys=row_keys,
        gather=gather,
        mask=mask,
        spans=torch.tensor(spans, dtype=torch.long).reshape(-1, 3),
        widths=torch.tensor(widths, dtype=torch.long),
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
