"""The `slcolm` command line: a thin layer over the library."""

from __future__ import annotations

import typer  # offline switches: set by the slcolm_dspy package itself, before any other import

from slcolm_dspy.cli.annotate_cmds import annotate_app
from slcolm_dspy.cli.data_cmds import data_app
from slcolm_dspy.cli.errors import DEBUG
from slcolm_dspy.cli.eval_cmds import evaluate, replay
from slcolm_dspy.cli.guide_cmds import guide, serve
from slcolm_dspy.cli.program_cmds import compile_program, extract
from slcolm_dspy.cli.schema_cmds import schema_app
from slcolm_dspy.cli.slm_cmds import slm_app

app = typer.Typer(
    name="slcolm",
    help="SLCoLM relation extraction: a small supervised model guides an LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of unexpected errors."),
) -> None:
    """SLCoLM relation extraction: a small supervised model guides an LLM."""
    DEBUG["on"] = debug or DEBUG["on"]


app.add_typer(data_app, name="data")
app.add_typer(slm_app, name="slm")
app.add_typer(schema_app, name="schema")
app.add_typer(annotate_app, name="annotate")
app.command()(evaluate)
app.command()(replay)
app.command()(guide)
app.command()(serve)
app.command("compile")(compile_program)
app.command()(extract)


def main() -> None:
    app()
