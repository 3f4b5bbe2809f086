"""Whole documents to extract from, read lazily: a `.txt` file (one document), a folder of them
(one document per file, id = its path under the folder), or JSON Lines with `id` and `text`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from slcolm_dspy.core.errors import DataError, SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.data.io import iter_jsonl
from slcolm_dspy.data.text import read_utf8


def _files(folder: Path) -> list[Path]:
    files = sorted(folder.rglob("*.txt"))
    if not files:
        raise SlcolmError(f"{folder}: no .txt files in this folder")
    return files


def _existing(path: Path) -> Path:
    if not path.exists():
        raise SlcolmError(f"file not found: {path}")
    return path


def count_documents(path: Path) -> int:
    """How many documents `iter_documents(path)` yields (for progress), without reading them."""
    if _existing(path).is_dir():
        return len(_files(path))
    if path.suffix == ".txt":
        return 1
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def iter_documents(path: Path) -> Iterator[Sentence]:
    """The documents of `path`, one at a time (memory stays flat however many there are)."""
    if _existing(path).is_dir():
        for f in _files(path):
            yield Sentence(f.relative_to(path).with_suffix("").as_posix(), read_utf8(f))
    elif path.suffix == ".txt":
        yield Sentence(path.stem, read_utf8(path))
    elif path.suffix == ".jsonl":
        for line, obj in iter_jsonl(path):
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or "id" not in obj:
                raise DataError(f"{path}:{line}", 'a document needs "id" and "text" (a string)')
            yield Sentence(str(obj["id"]), obj["text"])
    else:
        raise SlcolmError(f"{path}: give a .txt file, a folder of them, or .jsonl documents (id, text)")
