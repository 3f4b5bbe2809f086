"""Units and tokens: what a span is built over, and what the encoder reads.

A *unit* is the smallest piece of text a span may start or end at: one character for scripts
written without spaces (Chinese, Japanese, Thai, ...), one word for space-delimited ones (a run
of letters and digits, word-internal apostrophes, hyphens and dots included; every other
non-space character is a unit of its own). Units never contain whitespace. Records keep
character offsets; a unit knows its character range and the encoder tokens it covers.

*Tokens* are rows of the (cut) embedding table:
- `chars`: one row per character (Chinese with a pretrained encoder, whose pieces include single
  characters; and every language with the scratch encoder);
- `pieces`: a word is split into the pretrained tokenizer's own subword pieces (sentencepiece
  Unigram, as XLM-R and multilingual-e5 use), "▁" marking a word that follows a space. The
  table keeps the pieces the training text uses plus every single-character piece of it, and
  the kept pieces form a Unigram model of their own, so an unseen word is split into kept
  pieces rather than lost.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.language import detect_unsegmented, is_unsegmented_char, is_unsegmented_language

PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
SPECIALS = (PAD, UNK, CLS, SEP)
CHAR, WORD = "char", "word"
SPACE_MARK = "▁"  # sentencepiece's word-start mark

# A word: letters/digits, with dots or ampersands between them ("U.S", "a.m", "AT&T"); any other
# non-space character stands alone, so "Smith's" and "Arab-Israeli" end a unit before "'" and
# "-" (an entity "Smith" or "Arab" stays on unit boundaries).
_WORD_UNIT = re.compile(r"[^\W_]+(?:[.&][^\W_]+)*|\S")


def split_units(text: str, unit: str) -> list[tuple[int, int]]:
    """Character ranges (end exclusive) of the units of `text`, in order."""
    if unit == CHAR:
        return [(i, i + 1) for i, c in enumerate(text) if not c.isspace()]
    out: list[tuple[int, int]] = []
    for match in _WORD_UNIT.finditer(text):
        start, end = match.span()
        if any(is_unsegmented_char(c) for c in match.group()):
            out.extend((i, i + 1) for i in range(start, end))  # ideographs inside a word-mode text
        else:
            out.append((start, end))
    return out


def is_punctuation(text: str) -> bool:
    """A unit with no letter, digit or mark: punctuation and symbols."""
    return not any(unicodedata.category(c)[0] in "LNM" for c in text)


def choose_unit(language: str | None, texts: Iterable[str]) -> str:
    """Characters for unsegmented languages, words otherwise; from the schema's language code
    when it names one, else from the data."""
    known = is_unsegmented_language(language)
    unsegmented = known if known is not None else detect_unsegmented(texts)
    return CHAR if unsegmented else WORD


@dataclass
class TextUnits:
    """A text as the model reads it: token rows, and per unit its character range and the
    range of tokens (end exclusive) that spell it."""

    ids: list[int]
    units: list[tuple[int, int]]
    unit_tokens: list[tuple[int, int]]


@dataclass
class UnitVocab:
    """Unit kind, token kind and the embedding rows. `piece_ids[row]` is the pretrained
    encoder's id for that row (None: scratch encoder); `scores` are the Unigram scores of the
    kept pieces (token kind `pieces` only)."""

    unit: str
    tokens: str
    rows: list[str]
    piece_ids: list[int] | None = None
    scores: list[float] | None = None
    index: dict[str, int] = field(init=False, repr=False)
    _model: Any = field(init=False, repr=False, default=None)
    _cache: dict[str, list[int]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.unit not in (CHAR, WORD) or self.tokens not in ("chars", "pieces"):
            raise SlcolmError(f"unknown unit/token kind {self.unit!r}/{self.tokens!r}")
        self.index = {c: i for i, c in enumerate(self.rows)}
        if self.tokens == "pieces":
            from tokenizers.models import Unigram

            if self.scores is None or len(self.scores) != len(self.rows):
                raise SlcolmError("a piece vocabulary needs one score per row")
            self._model = Unigram(list(zip(self.rows, self.scores, strict=True)), unk_id=1)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def cls_id(self) -> int:
        return self.index[CLS]

    @property
    def sep_id(self) -> int:
        return self.index[SEP]

    def _char_rows(self, text: str) -> list[int]:
        unk = self.index[UNK]
        out = []
        for char in text:
            row = self.index.get(char)
            if row is None:
                row = self.index.get(unicodedata.normalize("NFKC", char), unk)
            out.append(row)
        return out

    def _piece_rows(self, word: str) -> list[int]:
        rows = self._cache.get(word)
        if rows is None:
            rows = [t.id for t in self._model.tokenize(unicodedata.normalize("NFKC", word))]
            if not rows:  # NFKC can erase a character (e.g. a lone combining mark)
                rows = [self.index[UNK]]
            if len(self._cache) < 200_000:
                self._cache[word] = rows
        return rows

    def encode(self, text: str) -> TextUnits:
        """Tokens for every unit of `text` (no [CLS]/[SEP]: the batcher adds them per window)."""
        units = split_units(text, self.unit)
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        for start, end in units:
            piece = text[start:end]
            if self.tokens == "chars":
                rows = self._char_rows(piece)
            else:
                follows_space = start == 0 or text[start - 1].isspace()
                rows = self._piece_rows(SPACE_MARK + piece if follows_space else piece)
            spans.append((len(ids), len(ids) + len(rows)))
            ids.extend(rows)
        return TextUnits(ids, units, spans)

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "tokens": self.tokens,
            "rows": self.rows,
            "piece_ids": self.piece_ids,
            "scores": self.scores,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitVocab:
        if "rows" not in data:
            raise SlcolmError("vocabulary of an older SLM format: retrain the model with `slcolm slm train`")
        return cls(
            data["unit"], data["tokens"], list(data["rows"]), data.get("piece_ids"), data.get("scores")
        )


def build_unit_vocab(
    texts: list[str],
    unit: str,
    tokenizer: Any | None = None,
    special_piece_ids: dict[str, int] | None = None,
) -> UnitVocab:
    """The vocabulary for `texts`: characters (scratch encoder, or unsegmented text with a
    pretrained one) or the tokenizer's subword pieces (words with a pretrained encoder)."""
    chars = sorted({c for text in texts for c in text if not c.isspace()})
    if tokenizer is None:
        return UnitVocab(unit, "chars", [*SPECIALS, *chars])
    specials = special_piece_ids or {}
    if unit == CHAR:
        lookup = piece_lookup(tokenizer)
        rows, pieces = list(SPECIALS), [specials[s] for s in SPECIALS]
        for char in chars:
            pid = lookup(char)
            if pid is not None:  # characters the encoder cannot represent share the [UNK] row
                rows.append(char)
                pieces.append(pid)
        return UnitVocab(unit, "chars", rows, pieces)
    return _piece_vocab(texts, tokenizer, specials, chars)


def _piece_vocab(texts: list[str], tokenizer: Any, specials: dict[str, int], chars: list[str]) -> UnitVocab:
    backend = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if backend.get("type") != "Unigram":
        raise SlcolmError(
            f"word units need a sentencepiece (Unigram) tokenizer; this encoder's is {backend.get('type')}: "
            "pass --units char"
        )
    full = tokenizer.backend_tokenizer.model
    vocab = backend["vocab"]
    piece_index = {piece: i for i, (piece, _) in enumerate(vocab)}
    kept: set[int] = set()
    seen: set[str] = set()
    for text in texts:
        for start, end in split_units(text, WORD):
            word = text[start:end]
            word = SPACE_MARK + word if start == 0 or text[start - 1].isspace() else word
            if word not in seen:
                seen.add(word)
                kept.update(t.id for t in full.tokenize(unicodedata.normalize("NFKC", word)))
    for char in [SPACE_MARK, *chars]:  # every character stays spellable on its own
        for form in {char, unicodedata.normalize("NFKC", char)}:
            for piece in (form, SPACE_MARK + form):
                if piece in piece_index:
                    kept.add(piece_index[piece])
    kept -= set(specials.values())
    order = sorted(kept)
    rows = [*SPECIALS, *(vocab[i][0] for i in order)]
    floor = min(float(s) for _, s in vocab) - 10.0  # specials are never chosen for text
    scores = [floor] * len(SPECIALS) + [float(vocab[i][1]) for i in order]
    return UnitVocab(WORD, "pieces", rows, [specials[s] for s in SPECIALS] + order, scores)


def piece_lookup(tokenizer: Any) -> Callable[[str], int | None]:
    """A character's id in a pretrained tokenizer's vocabulary, trying its NFKC form too
    (full-width punctuation is stored half-width)."""
    unk = tokenizer.unk_token_id

    def lookup(char: str) -> int | None:
        for form in (char, unicodedata.normalize("NFKC", char)):
            pid = tokenizer.convert_tokens_to_ids(form)
            if isinstance(pid, int) and pid != unk:
                return pid
        return None

    return lookup
