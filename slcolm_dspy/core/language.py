"""Which scripts write words without spaces: the one fact about a language that the readers and
the SLM need (how tokens join into text, whether spans are built over characters or words)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# ISO 639 codes of languages written without spaces between words.
UNSEGMENTED = frozenset({"zh", "lzh", "yue", "wuu", "ja", "th", "lo", "km", "my", "bo", "dz"})


def is_unsegmented_language(code: str | None) -> bool | None:
    """True/False for a known language code ('zh-Hant' counts as 'zh'); None when not given."""
    if not code:
        return None
    return code.split("-")[0].split("_")[0].lower() in UNSEGMENTED


def is_unsegmented_char(char: str) -> bool:
    """Ideographs, kana, Thai-family and Tibetan letters: scripts whose words are not spaced."""
    name = unicodedata.name(char, "")
    return name.startswith(("CJK ", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR", "TIBETAN"))


def detect_unsegmented(texts: Iterable[str], sample_chars: int = 200_000) -> bool:
    """From the data: most letters belong to an unsegmented script and spaces are rare."""
    letters = unsegmented = spaces = 0
    for text in texts:
        for char in text:
            if char.isspace():
                spaces += 1
            elif char.isalpha():
                letters += 1
                unsegmented += is_unsegmented_char(char)
        if letters + spaces >= sample_chars:
            break
    return letters > 0 and unsegmented / letters > 0.5 and spaces / (letters + spaces) < 0.05
