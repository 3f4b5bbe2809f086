"""`slcolm data ...`: fetch, describe and convert corpora."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from slcolm_dspy.cli.errors import reports_errors, stderr
from slcolm_dspy.cli.options import (
    DataOption,
    LineBreaksOption,
    SchemaOption,
    SkipBadOption,
    UnitOption,
)
from slcolm_dspy.cli.render import make_console
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.schema import Schema, load_schema
from slcolm_dspy.data.brat import BratOptions
from slcolm_dspy.data.build import LOSS_CAUSES, ReadReport
from slcolm_dspy.data.corpus import fetch_corpus, load_split, resolve_data_dir
from slcolm_dspy.data.paths import output_file
from slcolm_dspy.data.readers import read_records
from slcolm_dspy.data.stats import relation_table, split_stats
from slcolm_dspy.data.variants import add_variant, opencc_converter
from slcolm_dspy.data.writers import write_jsonl

data_app = typer.Typer(help="Fetch, describe and convert corpora.", no_args_is_help=True)
console = make_console()


EXAMPLES_PER_CAUSE = 3


def report_skipped(report: ReadReport) -> None:
    """What a reader did not take, on stderr: bad records, then each cause of loss once with its
    count and its first cases (file:line), then what the reader repaired or merged."""
    for err in report.skipped:
        stderr.print(f"skipped: {err}", markup=False)
    if report.skipped:
        stderr.print(f"{len(report.skipped)} bad record(s) skipped in {report.source}", markup=False)
    for cause, cases in sorted(report.cases.items()):
        stderr.print(f"lost: {len(cases)} {LOSS_CAUSES.get(cause, cause)}", markup=False)
        for problem in cases[:EXAMPLES_PER_CAUSE]:
            stderr.print(f"  {problem}", markup=False)
        if len(cases) > EXAMPLES_PER_CAUSE:
            stderr.print(f"  ... and {len(cases) - EXAMPLES_PER_CAUSE} more", markup=False)
    if report.counts:
        stderr.print(
            ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(report.counts.items())), markup=False
        )


@data_app.command("fetch")
@reports_errors
def fetch(
    name: Annotated[str, typer.Argument(help="Corpus (schema) name.")] = "chisre",
    data: DataOption = None,
    url_template: Annotated[
        str | None,
        typer.Option(help="Mirror URL with {file} (and {repository}, {commit}, {folder}) placeholders."),
    ] = None,
) -> None:
    """Download the corpus from its public repository at the pinned commit and check sha256."""
    schema = load_schema(name)
    out = resolve_data_dir(data)
    with console.status(f"fetching {name} into {out}"):
        files = fetch_corpus(
            schema, out, url_template=url_template, on_file=lambda f, how: console.print(f"{f}: {how}")
        )
    console.print(f"{len(files)} files verified in {out}")


def _print_split_table(schema: Schema, data_dir: Path, splits: dict[str, dict[str, Any]]) -> None:
    """Counts per split, then notes on records fixed or dropped while reading."""
    codes = list(schema.entity_names)
    table = Table(title=f"{schema.name}: {data_dir}", title_justify="left")
    for col in ("split", "sentences", "chars", "entities", *codes, "relations", "rel. types"):
        table.add_column(col, justify="left" if col == "split" else "right")
    notes = []
    for split, s in splits.items():
        if s["dropped_empty"]:
            notes.append(f"{split}: {s['dropped_empty']} empty record dropped")
        if s["label_fixes"]:
            fixes = schema.corpus.label_fixes
            notes.append(
                f"{split}: labels fixed: "
                + ", ".join(f"{k}→{fixes[k]} ×{v}" for k, v in s["label_fixes"].items())
            )
        if s["with_variant"]:
            notes.append(
                f"{split}: {s['with_variant']} sentences carry the {schema.corpus.variant_form} form"
            )
        table.add_row(
            split,
            str(s["sentences"]),
            str(s["chars"]),
            str(s["entities"]),
            *(str(s["entity_types"].get(c, 0)) for c in codes),
            str(s["relations"]),
            str(s["relation_types"]),
        )
    console.print(table)
    for note in notes:
        console.print(note)


def _print_relation_table(
    schema: Schema, splits: dict[str, dict[str, Any]], rows: list[dict[str, Any]]
) -> None:
    freq = Table(
        title=f"relation types (head: ≥ {schema.head_threshold} train relations)", title_justify="left"
    )
    for col in ("#", "type", "group", *splits):
        freq.add_column(col, justify="left" if col in ("type", "group") else "right")
    for i, row in enumerate(rows, start=1):
        freq.add_row(str(i), row["type"], row["group"], *(str(row[s]) for s in splits))
    console.print(freq)


@data_app.command("stats")
@reports_errors
def stats(
    data: DataOption = None,
    schema_name: SchemaOption = "chisre",
    as_json: Annotated[Path | None, typer.Option("--json", help="Also write the statistics here.")] = None,
    skip_bad: SkipBadOption = False,
) -> None:
    """Per-split counts and the relation frequency table, marked head/tail."""
    output_file(as_json, "--json")
    schema = load_schema(schema_name)
    data_dir = resolve_data_dir(data)
    if schema.corpus is None:
        raise SlcolmError(f"schema {schema.name!r} has no [corpus] section")
    splits = {}
    for split in schema.corpus.splits:
        records, report = load_split(data_dir, split, schema, skip_bad=skip_bad)
        report_skipped(report)
        splits[split] = split_stats(records, report)
    _print_split_table(schema, data_dir, splits)
    rows = relation_table(schema, splits)
    _print_relation_table(schema, splits, rows)
    if as_json:
        as_json.write_text(json.dumps({"splits": splits, "relations": rows}, ensure_ascii=False, indent=1))


@data_app.command("convert")
@reports_errors
def convert(
    source: Annotated[
        Path,
        typer.Argument(
            help="Corpus dict file, SpERT list file, JSONL, or brat .txt/.ann (a file or a directory)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Generic JSONL file to write.")],
    add_simplified: Annotated[
        bool,
        typer.Option(help="Add a character-aligned simplified form made with OpenCC (t2s) where missing."),
    ] = False,
    schema_name: SchemaOption = "chisre",
    skip_bad: SkipBadOption = False,
    line_breaks: LineBreaksOption = "auto",
    unit: UnitOption = "sentence",
    allow_empty: Annotated[
        bool, typer.Option(help="Write an empty file for an input with no records instead of refusing.")
    ] = False,
) -> None:
    """Convert any supported file (SpERT JSON included) to the generic JSONL format."""
    output_file(out, reads=[source])
    brat = BratOptions(line_breaks, unit)
    schema = load_schema(schema_name)
    records, report = read_records(source, schema, skip_bad=skip_bad, brat=brat, allow_empty=allow_empty)
    report_skipped(report)
    if add_simplified:
        form = (schema.corpus.variant_form if schema.corpus else None) or "simplified"
        records = add_variant(records, form, opencc_converter("t2s"))
    n = write_jsonl(records, out)
    console.print(f"wrote {n} records to {out}")
