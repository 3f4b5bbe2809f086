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
