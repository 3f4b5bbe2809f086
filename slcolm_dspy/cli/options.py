"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Corpus directory. Default: $SLCOLM_DATA, else data/chisre."),
]
SchemaOption = Annotated[
    str, typer.Option("--schema", help="Schema name in signatures/ or a path to a .toml file.")
]
SkipBadOption = Annotated[
    bool, typer.Option("--skip-bad", help="Skip bad records (counted and listed) instead of stopping.")
]
# Run settings: how a run talks to its LLM. Given at run time, never stored in a program.
ConcurrencyOption = Annotated[
    int, typer.Option(min=1, help="LLM requests in flight at once (and local server slots).")
]
MaxTokensOption = Annotated[int, typer.Option(min=16, help="Longest LLM reply, in tokens.")]
RetriesOption = Annotated[
    int, typer.Option(min=0, max=10, help="Retries of a failed LLM call (429, 5xx, time-out) with backoff.")
]
