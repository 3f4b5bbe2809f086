"""Raw text -> sentence records: running text is split after sentence-final punctuation.

Classical Chinese sentences in the corpus run across commas and semicolons, so only 。！？ (and
their ASCII forms, and line breaks) end a sentence; closing quotes and brackets that follow the
mark stay with it. Offsets are kept: `start` is where each sentence begins in its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence

_SENTENCE = re.compile(r"[^。！？!?]*(?:[。！？!?]+[」』”’）)]*|$)")


def split_sentences(text: str) -> list[tuple[int, str]]:
    """(start offset, sentence) for every non-blank sentence of one line of text."""
    out = []
    for match in _SENTENCE.finditer(text):
        chunk = match.group(0)
        stripped = chunk.strip()
        if stripped:
            out.append((match.start() + chunk.index(stripped[0]), stripped))
    return out


def read_text(path: Path) -> list[Sentence]:
    """Sentences of a UTF-8 text file; ids are `<file stem>:<line>:<n>`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SlcolmError(f"file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise SlcolmError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return list(_sentences(path.stem, lines))


def _sentences(stem: str, lines: list[str]) -> Iterator[Sentence]:
    for lineno, line in enumerate(lines, start=1):
        for n, (_, sentence) in enumerate(split_sentences(line), start=1):
            yield Sentence(f"{stem}:{lineno}:{n}", sentence)
