"""Corrected records into the train split, with provenance: which sentences were added, when,
from which file, in which round. The provenance is a JSON Lines file beside the grown split
(`<split>.provenance.jsonl`), carried over from the split it grew from."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence


def provenance_path(split: Path) -> Path:
    return split.with_name(split.name + ".provenance.jsonl")


def grow(
    train: Sequence[Sentence], added: Sequence[Sentence], source: str, round_name: str
) -> tuple[list[Sentence], list[dict[str, Any]]]:
    """The train records followed by the added ones, and a provenance line per added record. An
    added id already in train (or twice among the added) is refused: a record is annotated once."""
    known = {r.id for r in train}
    seen: set[str] = set()
    for record in added:
        if record.id in known or record.id in seen:
            raise SlcolmError(
                f"{source}: record {record.id!r} is already in the train split; a sentence is added once"
            )
        seen.add(record.id)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = [
        {"id": r.id, "added": when, "source": source, "round": round_name, "relations": len(r.relations)}
        for r in added
    ]
    return [*train, *added], lines


def read_provenance(split: Path) -> list[dict[str, Any]]:
    path = provenance_path(split)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_provenance(split: Path, lines: Sequence[dict[str, Any]]) -> Path:
    path = provenance_path(split)
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return path
