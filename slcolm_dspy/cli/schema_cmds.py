"""`slcolm schema ...`: derive schema companions from the data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slcolm_dspy.cli.errors import reports_errors
from slcolm_dspy.cli.options import DataOption, LineBreaksOption, SchemaOption, UnitOption
from slcolm_dspy.cli.render import make_console
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.brat import BratOptions
from slcolm_dspy.data.corpus import load_split, resolve_data_dir
from slcolm_dspy.data.draft import check_schema, draft_schema
from slcolm_dspy.data.paths import output_file
from slcolm_dspy.guide.triggers import TriggerSettings, coverage, mine_triggers, write_lexicon

schema_app = typer.Typer(
    help="Draft a schema from data, check one against data, mine its trigger lexicon.", no_args_is_help=True
)
console = make_console()


@schema_app.command("triggers")
@reports_errors
def triggers(
    out: Annotated[Path, typer.Option("--out", help="TOML file to write.")],
    data: DataOption = None,
    per_type: Annotated[int, typer.Option(min=1)] = TriggerSettings.per_type,
    min_lift: float = TriggerSettings.min_lift,
    min_precision: float = TriggerSettings.min_precision,
    schema_name: SchemaOption = "chisre",
) -> None:
    """Mine trigger n-grams per relation type from train; report their coverage of dev gold types."""
    output_file(out)
    schema = load_schema(schema_name)
    data_dir = resolve_data_dir(data)
    train_records, _ = load_split(data_dir, "train", schema)
    dev_records, _ = load_split(data_dir, "dev", schema)
    settings = TriggerSettings(per_type=per_type, min_lift=min_lift, min_precision=min_precision)
    lexicon = mine_triggers(train_records, schema.relation_types, settings, words=schema.spaced)
    measured = {"dev": coverage(dev_records, lexicon, words=schema.spaced)}
    command = (
        f"slcolm schema triggers --out {out.name} --per-type {per_type}"
        f" --min-lift {min_lift} --min-precision {min_precision}"
    )
    write_lexicon(out, lexicon, settings, measured, command)
    dev = measured["dev"]
    console.print(
        f"wrote {sum(map(len, lexicon.values()))} triggers for {len(lexicon)} types to {out}; "
        f"dev: {100 * dev['gold_type_recall']:.1f}% of gold types triggered, "
        f"{dev['mean_types']:.1f} types per sentence"
    )


@schema_app.command("init")
@reports_errors
def init(
    data: Annotated[
        list[Path], typer.Option("--data", help="A corpus directory or data files (any supported format).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Schema TOML file to write.")],
    name: Annotated[str | None, typer.Option(help="Schema name (default: the file's stem).")] = None,
    head_threshold: Annotated[
        int, typer.Option(min=1, help="Types with at least this many train relations are head types.")
    ] = 100,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    line_breaks: LineBreaksOption = "auto",
    unit: UnitOption = "sentence",
) -> None:
    """Draft a schema from annotated data: inventories with train counts, head/tail split,
    direction-insensitive candidates, language, TODO definition stubs."""
    output_file(out)
    if out.exists() and not force:
        raise SlcolmError(f"--out {out} exists; pass --force to overwrite it")
    brat = BratOptions(line_breaks, unit)
    text, summary = draft_schema(data, name or out.stem, head_threshold, brat)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    sentences = ", ".join(f"{n} {s}" for s, n in summary["sentences"].items())
    console.print(
        f"wrote {out}: {len(summary['entity_types'])} entity types, {len(summary['relation_types'])} "
        f"relation types ({len(summary['head'])} head), language {summary['language']} ({sentences})"
    )
    if summary["direction_insensitive_candidates"]:
        console.print(
            "review direction_insensitive: " + ", ".join(summary["direction_insensitive_candidates"])
        )
    for split, types in summary["not_in_train"].items():
        if types:
            console.print(f"in {split} but not in train (label_fixes TODO): {', '.join(types)}")
    for rel_type, causes in summary["skipped"].items():
        why = ", ".join(f"{n} {c.replace('_', ' ')}" for c, n in causes.items())
        console.print(f"skipped (no relation readable as a record): {rel_type} ({why})", markup=False)
    console.print(f"next: fill the TODOs, then `slcolm schema check --schema {out} --data ...`")


@schema_app.command("check")
@reports_errors
def check(
    data: Annotated[
        list[Path], typer.Option("--data", help="A corpus directory or data files (any supported format).")
    ],
    schema_name: SchemaOption = "chisre",
    line_breaks: LineBreaksOption = "auto",
    unit: UnitOption = "sentence",
) -> None:
    """Validate a schema against data: types in the data but not in the schema, missing
    definitions, empty types. Exit 1 when there is any problem."""
    schema = load_schema(schema_name)
    problems = check_schema(schema, data, BratOptions(line_breaks, unit))
    for problem in problems:
        console.print(f"{schema.source}: {problem}", markup=False)
    if problems:
        console.print(f"{len(problems)} problems")
        raise typer.Exit(1)
    console.print(f"{schema.source}: no problem with {', '.join(str(p) for p in data)}")
