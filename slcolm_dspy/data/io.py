"""Low-level file access with errors that name the file and line."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import DataError, SlcolmError


def load_json(path: Path) -> Any:
    """Parse a whole JSON file; a syntax error names the line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SlcolmError(f"file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            str(path), f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object) for each non-blank line of a JSON Lines file."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise SlcolmError(f"file not found: {path}") from None
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    str(path), f"invalid JSON: {exc.msg} (column {exc.colno})", f"at line {lineno}"
                ) from None
            except UnicodeDecodeError as exc:
                raise DataError(str(path), f"not UTF-8 text ({exc.reason})", f"at line {lineno}") from None


def first_jsonl_object(path: Path) -> Any:
    for _, obj in iter_jsonl(path):
        return obj
    return None


def written_ids(path: Path) -> set[str]:
    """Ids of the records an earlier (possibly interrupted) run already appended to `path`."""
    if not path.is_file():
        return set()
    return {str(obj["id"]) for _, obj in iter_jsonl(path) if isinstance(obj, dict) and "id" in obj}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
