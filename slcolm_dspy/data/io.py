"""Low-level file access with errors that name the file and line."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import DataError, SlcolmError

# Deeper JSON is refused before parsing: the C decoder would raise RecursionError, and hitting
# the interpreter's recursion limit can leave it unable to compile code afterwards.
MAX_DEPTH = 200
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


def _too_deep(blob: bytes) -> bool:
    """Whether the JSON text nests arrays/objects deeper than MAX_DEPTH (strings ignored)."""
    if blob.count(b"[") + blob.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', blob)):
        depth += 1 if match.group() in (b"[", b"{") else -1
        if depth > MAX_DEPTH:
            return True
    return False


def refuse_special_file(path: Path) -> None:
    """A path that exists but is neither a file nor a folder (a pipe, a device): reading it may
    never end, so it is refused before anything reads it."""
    if path.exists() and not path.is_file() and not path.is_dir():
        raise SlcolmError(f"{path} is not a regular file (a pipe or a device); write it to a file first")


def load_json(path: Path) -> Any:
    """Parse a whole JSON file; a syntax error names the line and column."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise SlcolmError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise SlcolmError(f"{path} is a directory, not a JSON file") from None
    return _loads(path, blob, None)


def _loads(path: Path, blob: bytes, line: int | None) -> Any:
    """Decode and parse one JSON text: the whole file (`line` None) or one line of a JSONL file;
    every problem is a DataError naming the file (and the line)."""
    record = None if line is None else f"at line {line}"
    if _too_deep(blob):
        raise DataError(str(path), f"JSON nested too deeply (more than {MAX_DEPTH} levels)", record)
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})", record) from None
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except json.JSONDecodeError as exc:
        if line is None:
            problem = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        else:
            problem = f"invalid JSON: {exc.msg} (column {exc.colno})"
        raise DataError(str(path), problem, record) from None
    except RecursionError:
        raise DataError(str(path), "JSON nested too deeply", record) from None
    except ValueError as exc:  # a duplicate key, or a number too long to convert
        raise DataError(str(path), str(exc).splitlines()[0], record) from None


def iter_jsonl(path: Path, *, bad: list[DataError] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object) for each non-blank line of a JSON Lines file. With
    `bad`, a line that does not parse is appended there and skipped instead of raised."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise SlcolmError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise SlcolmError(f"{path} is a directory, not a JSON Lines file") from None
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                parsed = _loads(path, line, lineno)
            except DataError as err:
                if bad is None:
                    raise
                bad.append(err)
                continue
            yield lineno, parsed


def first_jsonl_object(path: Path) -> Any:
    for _, obj in iter_jsonl(path):
        return obj
    return None


def written_ids(path: Path) -> set[str]:
    """Ids of the records an earlier (possibly interrupted) run already appended to `path`; a
    torn last line (a crash mid-write) is not a record."""
    if not path.is_file():
        return set()
    ids: set[str] = set()
    for obj in complete_records(path):
        if isinstance(obj, dict) and "id" in obj:
            ids.add(str(obj["id"]))
    return ids


def complete_records(path: Path) -> Iterator[Any]:
    """The parsed lines of a JSON Lines file that a run appends to, without a torn last line."""
    blob = path.read_bytes()
    lines = blob.split(b"\n")
    torn = lines.pop() if lines else b""  # after the last newline: empty unless the write was cut
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield _loads(path, line, number)
    if torn.strip():
        try:
            yield json.loads(torn)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON lets a key repeat and the last silently wins; in a record that hides an error."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def drop_torn_tail(path: Path) -> bool:
    """Cut a last line that a crash left half-written (no newline, not JSON, maybe half a UTF-8
    character), so a resumed run appends after the last whole record and redoes the torn one.
    True when something was cut. Only the last line is read: outputs grow large."""
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        end = handle.seek(0, 2)
        if end == 0:
            return False
        handle.seek(end - 1)
        if handle.read(1) == b"\n":
            return False
        cut, block = end, 1 << 16
        while cut > 0:  # back to the newline before the last line
            start = max(0, cut - block)
            handle.seek(start)
            newline = handle.read(cut - start).rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            cut = start
        handle.seek(cut)
        tail = handle.read()
    try:
        json.loads(tail)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        with path.open("r+b") as handle:
            handle.truncate(cut)
        return True
    with path.open("ab") as handle:  # a whole record that only lacks its newline
        handle.write(b"\n")
    return False


def rewrite_jsonl(path: Path, keep: Any) -> int:
    """Rewrite `path` keeping the parsed lines for which `keep(obj)` is true (atomically: a
    crash leaves the old file or the new one). Returns how many lines were dropped."""
    kept: list[bytes] = []
    dropped = 0
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        if keep(_loads(path, line, number)):
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(b"".join(x + b"\n" for x in kept))
        partial.replace(path)
    return dropped


def sha256_of(path: Path) -> str:
    """SHA-256 of a file; of a directory (brat documents), over its files' names and bytes."""
    digest = hashlib.sha256()
    folder = path.is_dir()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if folder else [path]
    for file in files:
        if folder:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()
