"""The declared shape of a schema file: every table and key a schema may hold, and what each
holds. A schema is checked against it before it is read, so a misspelt key, an unknown table, a
number where a name belongs or an empty inventory is one line that names the place, instead of
a key silently ignored or a message about something else."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slcolm_dspy.core.errors import SlcolmError


@dataclass(frozen=True)
class ListOf:
    item: type


@dataclass(frozen=True)
class MapOf:
    """A table of names the user chooses (type codes, split names), each holding `value`."""

    value: Any


FREE = object()  # a table checked by its own reader ([prompts] by the prompt templates, [slm] by train)

SHAPE: dict[str, Any] = {
    "schema": {"name": str, "description": str, "language": str},
    "entities": MapOf(str),
    "relations": {
        "types": ListOf(str),
        "direction_insensitive": ListOf(str),
        "skip": ListOf(str),
        "normalise": {"cut_at": str, "delete": ListOf(str)},
        "aliases": MapOf(str),
    },
    "head_tail": {"rule": str, "threshold_train_count": int, "head": ListOf(str)},
    "corpus": {
        "primary_form": str,
        "variant_form": str,
        "label_fixes": MapOf(str),
        "splits": MapOf({"file": str, "variant_file": str}),
        "fetch": {"url": str, "repository": str, "commit": str, "folder": str, "sha256": MapOf(str)},
        "brat": {"line_breaks": str, "unit": str},
    },
    "evaluation": {
        "primary": str,
        "paper": {"form": str, "strip_words": ListOf(str), "filter_excludes": ListOf(str)},
    },
    "definitions": MapOf(str),
    "statements": MapOf(str),
    "guide": {"triggers": str},
    "prompts": FREE,
    "slm": FREE,
}
REQUIRED = (("schema", "name"), ("entities",), ("relations", "types"))
_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def check_shape(raw: Mapping[str, Any], source: str) -> None:
    """Raise one SlcolmError naming the first place where `raw` leaves the declared shape."""
    for path in REQUIRED:
        node: Any = raw
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                where = "[" + ".".join(path[:-1]) + "] " + path[-1] if len(path) > 1 else f"[{path[0]}]"
                raise SlcolmError(f"{source}: {where} is missing")
            node = node[key]
    _check(raw, SHAPE, source, "")
    if not raw["relations"]["types"]:
        raise SlcolmError(f"{source}: [relations] types is empty: list at least one relation type")
    if not raw["entities"]:
        raise SlcolmError(f"{source}: [entities] is empty: list at least one entity type")
    _one_code_per_name(raw["entities"], source)


def _check(value: Any, shape: Any, source: str, where: str) -> None:
    if shape is FREE:
        return
    if isinstance(shape, Mapping):
        if not isinstance(value, Mapping):
            raise SlcolmError(f"{source}: {_place(where)} must be a table, got {_kind(value)}")
        for key, item in value.items():
            if key not in shape:
                raise SlcolmError(f"{source}: unknown {_unknown(where, key, shape)}")
            _check(item, shape[key], source, f"{where}.{key}" if where else key)
        return
    if isinstance(shape, MapOf):
        if not isinstance(value, Mapping):
            raise SlcolmError(f"{source}: {_place(where)} must be a table, got {_kind(value)}")
        for key, item in value.items():
            _check(item, shape.value, source, f"{where}.{key}")
        return
    if isinstance(shape, ListOf):
        if not isinstance(value, list) or not all(isinstance(v, shape.item) for v in value):
            raise SlcolmError(
                f"{source}: {_place(where)} must be a list of {_NAMES[shape.item][2:]}s, got {_kind(value)}"
            )
        return
    if not isinstance(value, shape) or (shape is int and isinstance(value, bool)):
        raise SlcolmError(f"{source}: {_place(where)} must be {_NAMES[shape]}, got {_kind(value)}")


def _place(where: str) -> str:
    table, _, key = where.rpartition(".")
    return f"[{table}] {key}" if table else f"[{key}]"


def _unknown(where: str, key: str, shape: Mapping[str, Any]) -> str:
    known = list(shape)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
    return (f"key {key!r} in [{where}]" if where else f"table [{key}]") + hint


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return f"a list {value!r}"[:80]
    return "a table" if isinstance(value, Mapping) else type(value).__name__


def _one_code_per_name(entities: Mapping[str, str], source: str) -> None:
    """Two codes shown under one display name would be one type to the LLM and two to scoring."""
    seen: dict[str, str] = {}
    for code, name in entities.items():
        if name in seen:
            raise SlcolmError(f"{source}: [entities] {seen[name]!r} and {code!r} both display as {name!r}")
        seen[name] = code
