"""`slcolm evaluate` and `slcolm replay`: every number comes from `RelationEvaluator`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from slcolm_dspy.cli.data_cmds import report_skipped
from slcolm_dspy.cli.errors import reports_errors, stderr
from slcolm_dspy.cli.options import (
    ConcurrencyOption,
    DataOption,
    MaxTokensOption,
    SchemaOption,
    SkipBadOption,
    one_of,
)
from slcolm_dspy.cli.render import make_console, pct, per_type_table, summary_table
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import relation_type_counts
from slcolm_dspy.core.schema import Schema, load_schema
from slcolm_dspy.data.corpus import load_split, resolve_data_dir
from slcolm_dspy.data.paths import output_dir, output_file
from slcolm_dspy.data.readers import read_records
from slcolm_dspy.data.replay_pack import ReplayPack
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.evaluate.paper import entity_strings
from slcolm_dspy.guide.backends import DEFAULT_MAX_TOKENS
from slcolm_dspy.replay import ReplayReport, replay_report

console = make_console()


# The options of `slcolm evaluate`, named once.
PredOpt = Annotated[
    Path | None, typer.Option("--pred", help="Predicted records (JSONL or any supported format).")
]
GoldOpt = Annotated[
    Path | None, typer.Option("--gold", help="Gold records (corpus file, JSONL, SpERT, replay gold).")
]
ProgramOpt = Annotated[
    Path | None,
    typer.Option(
        "--program", help="A compiled program: run it on --split and report every system (no --pred/--gold)."
    ),
]
SplitOpt = Annotated[str, typer.Option("--split", help="With --program: the split to evaluate on.")]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="With --program: the first N sentences.")
]
LMOpt = Annotated[str | None, typer.Option("--lm", help="With --program: another LLM than compiled with.")]
ApiBaseOpt = Annotated[
    str | None, typer.Option("--api-base", help="With --program: an OpenAI-compatible server.")
]
SLMOpt = Annotated[Path | None, typer.Option("--slm", help="With --program: the program's SLM, if it moved.")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="With --program: report directory (default PROGRAM/eval-SPLIT).")
]
ProtocolOpt = Annotated[
    str, typer.Option("--protocol", help="paper (the authors' string matching) or strict (offsets).")
]
EntityFilterOpt = Annotated[
    Path | None,
    typer.Option(
        "--entity-filter",
        help="paper only: records whose entity strings are the only ones a predicted pair may use.",
    ),
]
PerTypeOpt = Annotated[bool, typer.Option("--per-type", help="Also print the per-type table.")]
CompareOpt = Annotated[
    bool,
    typer.Option(
        "--compare", help="With --program: also run the guided LLM and every merge policy for comparison."
    ),
]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the metrics here.")]


@reports_errors
def evaluate(
    pred: PredOpt = None,
    gold: GoldOpt = None,
    program: ProgramOpt = None,
    split: SplitOpt = "test",
    limit: LimitOpt = None,
    lm: LMOpt = None,
    api_base: ApiBaseOpt = None,
    slm: SLMOpt = None,
    out: OutOpt = None,
    concurrency: ConcurrencyOption = 1,
    max_tokens: MaxTokensOption = DEFAULT_MAX_TOKENS,
    data: DataOption = None,
    protocol: ProtocolOpt = "paper",
    entity_filter: EntityFilterOpt = None,
    per_type: PerTypeOpt = False,
    compare: CompareOpt = False,
    as_json: JsonOpt = None,
    schema_name: SchemaOption = "chisre",
    skip_bad: SkipBadOption = False,
) -> None:
    """Score predictions against gold (--pred/--gold), or a compiled program on a split (--program):
    micro/macro P/R/F1 under both protocols, head/tail macro, per type, NER."""
    output_file(as_json, "--json")
    if out is not None:
        output_dir(out)
    if program is not None:
        run = (lm, api_base, slm, data, concurrency, max_tokens)
        return _program_report(program, pred, gold, split, run, limit=limit, out=out, compare=compare)
    if pred is None or gold is None:
        raise SlcolmError("give --pred and --gold, or --program")
    one_of("--protocol", protocol, ("paper", "strict"))
    schema = load_schema(schema_name)
    result = _score_files(pred, gold, schema, protocol, entity_filter, skip_bad=skip_bad)
    console.print(summary_table(f"{protocol} protocol, {result['sentences']} sentences", {pred.name: result}))
    if per_type:
        console.print(per_type_table(result, set(schema.head_types)))
    if as_json:
        as_json.write_text(json.dumps(result, ensure_ascii=False, indent=1))


def _program_report(
    program: Path, pred: Path | None, gold: Path | None, split: str, run: tuple, **kwargs: Any
) -> None:
    """--program: run the compiled program on the split with these run settings, report it."""
    from slcolm_dspy.cli.program_cmds import evaluate_program
    from slcolm_dspy.program.apply import RunOptions

    if pred is not None or gold is not None:
        raise SlcolmError("--program evaluates on --split: leave out --pred and --gold")
    evaluate_program(program, split, RunOptions(*run), **kwargs)


def _score_files(
    pred: Path, gold: Path, schema: Schema, protocol: str, entity_filter: Path | None, *, skip_bad: bool
) -> dict:
    """The evaluator's result for two record files, with notes on sentences that do not pair up."""
    gold_records, gold_report = read_records(gold, schema, skip_bad=skip_bad)
    pred_records, pred_report = read_records(pred, schema, skip_bad=skip_bad)
    report_skipped(gold_report)
    report_skipped(pred_report)
    allowed = None
    if entity_filter is not None:
        if protocol != "paper":
            raise SlcolmError("--entity-filter applies to the paper protocol only")
        filter_records, _ = read_records(entity_filter, schema)
        pairs, _ = RelationEvaluator(gold_records, schema).pair_up(filter_records)
        form = schema.paper.form
        allowed = {g.id: entity_strings(f, form, schema) for g, f in pairs if f is not None}
    evaluator = RelationEvaluator(gold_records, schema, protocol, allowed_entities=allowed)  # type: ignore[arg-type]
    result = evaluator(pred_records)
    if result["missing_predictions"]:
        stderr.print(
            f"note: {result['missing_predictions']} gold sentence(s) have no prediction; scored as empty"
        )
    if result["unmatched_predictions"]:
        stderr.print(f"note: {result['unmatched_predictions']} prediction(s) match no gold sentence; ignored")
    if result["sentences"] and result["sentences"] == result["missing_predictions"]:
        raise SlcolmError(f"no prediction in {pred} matches a gold sentence in {gold} by id or text")
    return result


def _train_counts(data_dir: Path, schema_name: str) -> Counter[str]:
    schema = load_schema(schema_name)
    records, _ = load_split(data_dir, "train", schema)
    return relation_type_counts(records)


@reports_errors
def replay(
    pack: Annotated[
        Path | None, typer.Option("--pack", help="Replay pack directory. Default: DATA/replay.")
    ] = None,
    data: DataOption = None,
    as_json: Annotated[Path | None, typer.Option("--json", help="Also write every result here.")] = None,
    schema_name: SchemaOption = "chisre",
) -> None:
    """Re-score the paper's recorded outputs; check them against expected.json; try every merge mode."""
    output_file(as_json, "--json")
    schema = load_schema(schema_name)
    data_dir = resolve_data_dir(data)
    pack_dir = pack or data_dir / "replay"
    report = replay_report(ReplayPack.load(pack_dir, schema), schema, _train_counts(data_dir, schema_name))
    _print_recorded(report, pack_dir)
    alone = {"SLM alone, test": report.slm["test"]}
    if report.slm["dev"]:
        alone["SLM alone, dev (318)"] = report.slm["dev"]
    console.print(summary_table("recorded SLM, paper protocol", alone))
    for name, w in report.w_lists.items():
        console.print(f"W {name} ({len(w)}): {' '.join(w)}")
    for name, sources in report.per_type_sources.items():
        for source in ("llm", "union"):
            chosen = [t for t, s in sources.items() if s == source]
            console.print(f"per-type {name}, {source} ({len(chosen)}): {' '.join(chosen)}")
    _print_modes(report)
    if as_json:
        as_json.write_text(json.dumps(report.to_json(), ensure_ascii=False, indent=1))
    if report.mismatches:
        raise SlcolmError(f"{report.mismatches} recorded run(s) do not reproduce expected.json")


def _print_recorded(report: ReplayReport, pack_dir: Path) -> None:
    table = Table(title=f"recorded runs, paper protocol ({pack_dir})", title_justify="left")
    scores = ("micro P / R / F1", "macro P / R / F1", "expected micro / macro F1", "match")
    for col in ("run", "settings", *scores):
        table.add_column(col, justify="left" if col in ("run", "settings") else "right")
    for r in report.recorded:
        res = r.result
        check = ("-", "-")
        if r.expected is not None:
            check = (f"{r.expected[0]:.2f} / {r.expected[1]:.2f}", "yes" if r.reproduced else "NO")
        table.add_row(
            r.run,
            r.label,
            f"{pct(res['micro_p'])} / {pct(res['micro_r'])} / {pct(res['micro_f1'])}",
            f"{pct(res['macro_p'])} / {pct(res['macro_r'])} / {pct(res['macro_f1'])}",
            *check,
        )
    console.print(table)


def _print_modes(report: ReplayReport) -> None:
    table = Table(title="merge modes on the recorded outputs: micro / macro F1", title_justify="left")
    table.add_column("setting")
    for run in report.runs:
        table.add_column(run, justify="right")
    for label, by_run in report.modes.items():
        cells = (f"{pct(by_run[r]['micro_f1'])} / {pct(by_run[r]['macro_f1'])}" for r in report.runs)
        table.add_row(label, *cells)
    console.print(table)
