"""`slcolm annotate ...`: choose what to annotate next, export it pre-annotated, merge the
corrections into the train split, and compare the SLMs before and after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from slcolm_dspy.cli.data_cmds import report_skipped
from slcolm_dspy.cli.errors import reports_errors
from slcolm_dspy.cli.options import DataOption, DeviceOption, SchemaOption, one_of
from slcolm_dspy.cli.render import make_console
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema, load_schema
from slcolm_dspy.data.paths import output_dir, output_file
from slcolm_dspy.data.readers import read_records

annotate_app = typer.Typer(
    help="Grow the tail: choose sentences to annotate, export them pre-annotated, merge the corrections.",
    no_args_is_help=True,
)
console = make_console()
FORMATS = ("brat", "label-studio")


def _train_counts(slm: Path) -> dict[str, int]:
    from slcolm_dspy.slm.checkpoint import recorded_train_counts

    counts = recorded_train_counts(slm)
    if counts is None:
        raise SlcolmError(
            f"{slm}: the SLM records no train counts (trained before they were kept); retrain it"
        )
    return counts


def _pool(path: Path, schema: Schema) -> list[Sentence]:
    """Unannotated text: running text (`.txt`, cut into sentences) or records (annotations dropped)."""
    from slcolm_dspy.data.text import read_text

    if path.suffix == ".txt":
        records = read_text(path)
    else:
        records = [r.with_predictions((), ()) for r in read_records(path, schema)[0]]
    if not records:
        raise SlcolmError(f"{path}: no sentences")
    return records


@annotate_app.command("select")
@reports_errors
def select_cmd(
    pool: Annotated[
        Path, typer.Option("--pool", help="Unannotated sentences: .txt, JSONL or any record file.")
    ],
    slm: Annotated[Path, typer.Option("--slm", help="The trained SLM that reads the pool.")],
    out: Annotated[
        Path, typer.Option("--out", help="JSONL of the chosen sentences, pre-annotated, with reasons.")
    ],
    budget: Annotated[int, typer.Option(min=1, help="Sentences to choose.")] = 100,
    tail_below: Annotated[
        int | None, typer.Option(min=1, help="Tail types have fewer train relations (default: the schema's).")
    ] = None,
    diversity: Annotated[bool, typer.Option(help="Pass over near-duplicates (e5 vectors, FAISS).")] = True,
    schema_name: SchemaOption = "chisre",
    device: DeviceOption = "auto",
) -> None:
    """Rank unannotated sentences by the tail relations they may hold and the SLM's doubt; write
    the best BUDGET, each with the SLM's pre-annotation and the reasons it was chosen."""
    from slcolm_dspy.annotate.select import SelectSettings, select
    from slcolm_dspy.slm.extractor import SpanExtractor

    output_file(out, reads=[pool])
    schema = load_schema(schema_name)
    records = _pool(pool, schema)
    counts = _train_counts(slm)
    embedder = None
    if diversity:
        from slcolm_dspy.guide.embed import E5Embedder

        embedder = E5Embedder()
    settings = SelectSettings(budget=budget, tail_below=tail_below)
    with console.status(f"reading {len(records)} sentences with the SLM"):
        choices = select(records, SpanExtractor.load(slm, device=device), schema, counts, settings, embedder)
    # each line is a record with its reasons under "selection" (readers ignore the key)
    lines = [json.dumps(c.to_json(), ensure_ascii=False) for c in choices]
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    for c in choices[:10]:
        console.print(
            f"{c.rank:>3} {c.score:.2f} {c.record.id}: " + "; ".join(r["why"] for r in c.reasons),
            markup=False,
        )
    console.print(f"wrote {len(choices)} of {len(records)} sentences to {out}")


@annotate_app.command("export")
@reports_errors
def export_cmd(
    selection: Annotated[
        Path, typer.Argument(help="Records to correct (`annotate select`'s output, any records).")
    ],
    out: Annotated[Path, typer.Option("--out", help="brat: a folder; label-studio: a .json task file.")],
    to: Annotated[str, typer.Option("--format", help="brat or label-studio.")] = "brat",
    schema_name: SchemaOption = "chisre",
) -> None:
    """Write the records pre-annotated for correction: a brat folder (with annotation.conf and
    visual.conf) or a Label Studio task list (with label_config.xml)."""
    from slcolm_dspy.annotate.exchange import export_brat, export_label_studio

    one_of("--format", to, FORMATS)
    schema = load_schema(schema_name)
    records, report = read_records(selection, schema)
    report_skipped(report)
    if to == "brat":
        export_brat(records, output_dir(out), schema)
        console.print(
            f"wrote {len(records)} sentences to {out}/selection.txt and .ann; open the folder in brat"
        )
    else:
        export_label_studio(records, output_file(out) or out, schema)
        console.print(f"wrote {len(records)} tasks to {out} and {out.parent / 'label_config.xml'}")


def _corrected(path: Path, schema: Schema) -> list[Sentence]:
    from slcolm_dspy.annotate.exchange import SIDECAR, import_brat, import_label_studio

    if path.is_dir():
        if not (path / SIDECAR).is_file():
            raise SlcolmError(f"{path}: not a folder written by `slcolm annotate export` ({SIDECAR} missing)")
        records, report = import_brat(path, schema)
    elif path.suffix == ".json":
        records, report = import_label_studio(path, schema)
    else:
        raise SlcolmError(f"{path}: give an exported brat folder or a Label Studio JSON export")
    report_skipped(report)
    return records


@annotate_app.command("merge")
@reports_errors
def merge_cmd(
    corrected: Annotated[Path, typer.Argument(help="The corrected brat folder or Label Studio JSON export.")],
    into: Annotated[
        Path, typer.Option("--into", help="The train split the sentences join (any record file).")
    ],
    out: Annotated[Path, typer.Option("--out", help="The grown train split (JSONL).")],
    round_name: Annotated[str, typer.Option("--round", help="A name for this round of annotation.")] = "1",
    schema_name: SchemaOption = "chisre",
) -> None:
    """Read the corrections back (checked like any input) and write the train split grown by
    them, with `OUT.provenance.jsonl`: which sentences were added, when and from where."""
    from slcolm_dspy.annotate.grow import grow, read_provenance, write_provenance
    from slcolm_dspy.data.writers import write_jsonl

    output_file(out, reads=[into])
    schema = load_schema(schema_name)
    added = _corrected(corrected, schema)
    train, report = read_records(into, schema)
    report_skipped(report)
    grown, lines = grow(train, added, str(corrected), round_name)
    write_jsonl(grown, out)
    provenance = write_provenance(out, [*read_provenance(into), *lines])
    relations = sum(len(r.relations) for r in added)
    console.print(
        f"wrote {len(grown)} records to {out} ({len(train)} + {len(added)} added with {relations} relations);"
        f" provenance in {provenance}"
    )


@annotate_app.command("compare")
@reports_errors
def compare_cmd(
    before: Annotated[
        Path, typer.Option("--before", help="The SLM trained before the sentences were added.")
    ],
    after: Annotated[Path, typer.Option("--after", help="The SLM trained on the grown split.")],
    data: DataOption = None,
    split: Annotated[str, typer.Option(help="Split scored (never tune on test).")] = "dev",
    schema_name: SchemaOption = "chisre",
    device: DeviceOption = "auto",
) -> None:
    """Per relation type: train relations before and after, and the F1 of both SLMs on SPLIT."""
    from slcolm_dspy.data.corpus import load_split, resolve_data_dir
    from slcolm_dspy.evaluate import RelationEvaluator
    from slcolm_dspy.slm.extractor import SpanExtractor

    schema = load_schema(schema_name)
    gold, _ = load_split(resolve_data_dir(data), split, schema)
    evaluator = RelationEvaluator(gold, schema, schema.primary_protocol)
    inputs = [g.with_predictions((), ()) for g in gold]
    scores = {
        name: evaluator(SpanExtractor.load(path, device=device).predict(inputs))
        for name, path in (("before", before), ("after", after))
    }
    counts = {"before": _train_counts(before), "after": _train_counts(after)}
    table = Table(title=f"{split}: per type ({schema.primary_protocol} protocol)", title_justify="left")
    for column in ("type", "train before", "train after", "F1 before", "F1 after", "change"):
        table.add_column(column, justify="left" if column == "type" else "right")
    rows = []
    for rel_type in schema.relation_types:
        f1 = [scores[k]["per_type"].get(rel_type, {}).get("f1", 0.0) * 100 for k in ("before", "after")]
        rows.append((f1[1] - f1[0], rel_type, f1))
    for change, rel_type, f1 in sorted(rows, key=lambda r: -abs(r[0])):
        table.add_row(
            rel_type, str(counts["before"].get(rel_type, 0)), str(counts["after"].get(rel_type, 0)),
            f"{f1[0]:.1f}", f"{f1[1]:.1f}", f"{change:+.1f}",
        )  # fmt: skip
    console.print(table)
    for key in ("micro_f1", "macro_f1", "tail_macro_f1"):
        console.print(f"{key}: {100 * scores['before'][key]:.2f} -> {100 * scores['after'][key]:.2f}")
