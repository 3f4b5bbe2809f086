"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slcolm_dspy.core.errors import SlcolmError

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
# How brat documents become records (`data convert`, `schema init`, `schema check`).
LineBreaksOption = Annotated[
    str,
    typer.Option(
        "--line-breaks",
        help="brat .txt line breaks: sentence (each ends one), wrap (hard-wrapped: only blank lines"
        " end paragraphs), auto (wrap when the lines run to one width and end mid-sentence).",
    ),
]
UnitOption = Annotated[
    str,
    typer.Option(
        "--unit", help="brat records: sentence, or paragraph (keeps relations across its sentences)."
    ),
]
# Run settings: how a run talks to its LLM. Given at run time, never stored in a program.
ConcurrencyOption = Annotated[
    int, typer.Option(min=1, help="LLM requests in flight at once (and local server slots).")
]
MaxTokensOption = Annotated[int, typer.Option(min=16, help="Longest LLM reply, in tokens.")]
RetriesOption = Annotated[
    int, typer.Option(min=0, max=10, help="Retries of a failed LLM call (429, 5xx, time-out) with backoff.")
]
# The LLM, SLM and retrieval of a guide run (`slcolm guide`, `slcolm compile`).
LMOption = Annotated[str, typer.Option("--lm", help="local[:name] or any LiteLLM model string.")]
ApiBaseOption = Annotated[
    str | None, typer.Option("--api-base", help="An OpenAI-compatible server for --lm.")
]
SLMDirOption = Annotated[Path, typer.Option("--slm", help="A trained SLM directory.")]
DeviceOption = Annotated[
    str, typer.Option("--device", help="Where the SLM runs: cpu, cuda, cuda:N, or auto (a GPU if visible).")
]
DemoPoolOption = Annotated[
    str, typer.Option("--demo-pool", help="Split the demonstrations come from (never test).")
]
EmbedderOption = Annotated[
    str, typer.Option("--embedder", help="e5 or a local sentence-transformers directory.")
]


def one_of(option: str, value: str, choices: tuple[str, ...]) -> str:
    """`value` if it is one of `choices`, else a one-line error naming the option."""
    if value not in choices:
        listed = ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0]
        raise SlcolmError(f"{option} must be {listed}, not {value!r}")
    return value
