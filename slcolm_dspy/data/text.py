"""Raw text -> sentence records: running text is split after sentence-final punctuation.

Classical Chinese sentences in the corpus run across commas and semicolons, so only 。！？ (and
their ASCII forms, and line breaks) end a sentence; closing quotes and brackets that follow the
mark stay with it. A full stop ends a sentence when a space and a capital letter, a digit or an
opening quote follow and the word before it is not an abbreviation ("Mr.", "U.S.", "J. Smith").
Offsets are kept: `start` is where each sentence begins in its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.data.io import refuse_special_file

_END = re.compile(r"[。！？!?]+[」』”’）)\"']*|\.+[\"'”’)]*(?=\s+[\"'“‘(]?[A-Z0-9])")
# Words after which a full stop is not a sentence end (lower-cased, without the stop).
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sen",
        "rep",
        "gov",
        "gen",
        "col",
        "lt",
        "sgt",
        "st",
        "jr",
        "sr",
        "co",
        "corp",
        "inc",
        "ltd",
        "bros",
        "vs",
        "etc",
        "no",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "u.s",
        "u.k",
        "u.n",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
    ]
)


def _is_sentence_end(text: str, match: re.Match[str]) -> bool:
    if not match.group(0).startswith("."):
        return True
    before = re.search(r"[\w.]+$", text[: match.start()])
    word = before.group(0).casefold() if before else ""
    # an initial ("J.") or an abbreviation does not end the sentence
    return not (len(word) == 1 and word.isalpha()) and word not in _ABBREVIATIONS


def split_sentences(text: str) -> list[tuple[int, str]]:
    """(start offset, sentence) for every non-blank sentence of one line of text."""
    out = []
    start = 0
    cuts = [m.end() for m in _END.finditer(text) if _is_sentence_end(text, m)]
    for end in [*cuts, len(text)]:
        chunk = text[start:end]
        stripped = chunk.strip()
        if stripped:
            out.append((start + chunk.index(stripped[0]), stripped))
        start = end
    return out


def read_utf8(path: Path) -> str:
    """A UTF-8 text file's content (without a byte-order mark); a missing file, a folder or
    other bytes are a one-line error."""
    refuse_special_file(path)
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark is not text
    except FileNotFoundError:
        raise SlcolmError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise SlcolmError(f"{path} is a folder, not a text file") from None
    except UnicodeDecodeError as exc:
        raise SlcolmError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_text(path: Path) -> list[Sentence]:
    """Sentences of a UTF-8 text file; ids are `<file stem>:<line>:<n>`."""
    return list(_sentences(path.stem, read_utf8(path).splitlines()))


def _sentences(stem: str, lines: list[str]) -> Iterator[Sentence]:
    for lineno, line in enumerate(lines, start=1):
        for n, (_, sentence) in enumerate(split_sentences(line), start=1):
            yield Sentence(f"{stem}:{lineno}:{n}", sentence)
