"""Packaged TOML by name, or a user's `.toml` path: one reader for schemas, prompt templates and
optimizer presets, so each names its file the same way when it is missing or not valid TOML."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError


def read_toml(
    name_or_path: str | Path, *, package: str, folder: str, what: str, base: Path | None = None
) -> tuple[str, dict[str, Any]]:
    """(source, parsed) for a `.toml` path (relative to `base` if given) or for the packaged
    `<package>/<folder>/<name>.toml`; `source` is what error messages name. `what` says what
    the file is ("schema", "prompt template") in the not-found message."""
    text = str(name_or_path)
    if text.endswith(".toml"):
        path = Path(text)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise SlcolmError(f"{what} file not found: {path}")
        source, blob = str(path), path.read_bytes()
    else:
        inner = f"{folder}/{text}.toml" if folder else f"{text}.toml"
        resource = resources.files(package).joinpath(inner)
        shown = f"{package.rsplit('.', 1)[-1]}/{inner}"
        if not resource.is_file():
            raise SlcolmError(f"unknown {what} {text!r}: no {shown}")
        source, blob = shown, resource.read_bytes()
    try:
        return source, tomllib.loads(blob.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SlcolmError(f"{source}: not valid TOML: {exc}") from None
