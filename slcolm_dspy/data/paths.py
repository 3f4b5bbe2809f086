"""Output paths checked before any work is done: a run must not compute for an hour and then
fail to write. Missing parent folders are created; a folder where a file belongs (or a file
where a folder belongs) is one clear error naming the path."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
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


def _writable(folder: Path, path: Path, option: str) -> None:
    """Create and remove a file in `folder`: permissions, a read-only mount or a full disk are
    found now, not after the work is done."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".slcolm-probe-"):
            pass
    except OSError as exc:
        raise SlcolmError(f"{option} {path}: cannot write in {folder} ({exc.strerror})") from None


def output_file(path: Path | None, option: str = "--out", *, reads: Sequence[Path] = ()) -> Path | None:
    """`path` ready to be written as a file (None passes through: the option was not given).
    `reads`: the command's inputs, which the output must not overwrite."""
    if path is None:
        return None
    if path.is_dir():
        raise SlcolmError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise SlcolmError(f"{option} {path} is not a regular file (a pipe or a device); give a file name")
    for source in reads:
        if path.exists() and source.exists() and path.resolve() == source.resolve():
            raise SlcolmError(f"{option} {path} is the input file too; give another name")
    _make_parents(path, option)
    _writable(path.parent, path, option)
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
    _writable(path, path, option)
    return path
