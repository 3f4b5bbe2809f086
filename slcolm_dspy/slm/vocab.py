"""Characters are the tokens: one row of the (cut) embedding table per character."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
SPECIALS = (PAD, UNK, CLS, SEP)


@dataclass
class CharVocab:
    """char -> row. `piece_ids[row]` is the pretrained encoder's id for that row (None: scratch)."""

    chars: list[str]
    piece_ids: list[int] | None = None
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """[CLS] + one row per character + [SEP]; unseen characters become [UNK]."""
        unk = self.index[UNK]
        return [self.index[CLS], *(self.index.get(c, unk) for c in text), self.index[SEP]]

    def to_json(self) -> dict[str, Any]:
        return {"chars": self.chars, "piece_ids": self.piece_ids}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CharVocab:
        return cls(list(data["chars"]), data.get("piece_ids"))


def build_vocab(
    texts: Iterable[str],
    piece_id: Callable[[str], int | None] | None = None,
    special_piece_ids: dict[str, int] | None = None,
) -> CharVocab:
    """The characters of `texts`. With a pretrained encoder, characters it cannot represent
    (piece_id None) share the [UNK] row rather than getting an untrained one."""
    seen: dict[str, None] = {}
    for text in texts:
        for char in text:
            seen.setdefault(char, None)
    if piece_id is None:
        return CharVocab([*SPECIALS, *sorted(seen)])
    chars, pieces = list(SPECIALS), [special_piece_ids[s] for s in SPECIALS]  # type: ignore[index]
    for char in sorted(seen):
        pid = piece_id(char)
        if pid is not None:
            chars.append(char)
            pieces.append(pid)
    return CharVocab(chars, pieces)


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
