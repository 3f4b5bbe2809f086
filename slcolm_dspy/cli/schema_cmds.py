"""`slcolm schema ...`: derive schema companions from the data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slcolm_dspy.cli.errors import reports_errors
from slcolm_dspy.cli.options import DataOption, SchemaOption
from slcolm_dspy.cli.render import make_console
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split, resolve_data_dir
from slcolm_dspy.guide.triggers import TriggerSettings, coverage, mine_triggers, write_lexicon

schema_app = typer.Typer(
    help="Derive schema companions (trigger lexicon) from the corpus.", no_args_is_help=True
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
