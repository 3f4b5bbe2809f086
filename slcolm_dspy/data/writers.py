"""Write records as the generic JSON Lines format, whole or one record at a time."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from slcolm_dspy.core.records import Sentence


def dumps(sentence: Sentence) -> str:
    return json.dumps(sentence.to_json(), ensure_ascii=False)


def write_jsonl(records: Iterable[Sentence], path: Path) -> int:
    """Write all records to `path` (atomically: a temp file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for sentence in records:
            handle.write(dumps(sentence) + "\n")
            count += 1
    tmp.replace(path)
    return count


class JsonlAppender:
    """Append records as they are produced, flushed per line, so an interrupted run keeps them."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle: IO[str] = path.open("a", encoding="utf-8")

    def append(self, sentence: Sentence) -> None:
        self.append_line(dumps(sentence))

    def append_line(self, line: str) -> None:
        """A record already serialised by `dumps` (one line, no newline)."""
        self._handle.write(line + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
