"""Output paths checked before any work is done: a run must not compute for an hour and then
fail to write. Missing parent folders are created; a folder where a file belongs (or a file
where a folder belongs) is one clear error naming the path."""

from __future__ import annotations

from pathlib import Path

from slcolm_dspy.core.errors import SlcolmError


def _make_parents(path: Path, option: str) -> None:
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise SlcolmError(f"{option} {path}: {parent} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SlcolmError(f"{option} {path}: cannot create {path.parent} ({exc.strerror})") from None


def output_file(path: Path | None, option: str = "--out") -> Path | None:
    """`path` ready to be written as a file (None passes through: the option was not given)."""
    if path is None:
        return None
    if path.is_dir():
        raise SlcolmError(f"{option} {path} is a folder; give a file name")
    _make_parents(path, option)
    return path


def output_dir(path: Path, option: str = "--out") -> Path:
    """`path` ready to hold a run's files."""
    if path.exists() and not path.is_dir():
        raise SlcolmError(f"{option} {path} is a file; give a folder")
    _make_parents(path, option)
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise SlcolmError(f"{option} {path}: cannot create it ({exc.strerror})") from None
    return path
