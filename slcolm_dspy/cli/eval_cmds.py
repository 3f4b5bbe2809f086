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
)
from slcolm_dspy.cli.render import make_console, pct, per_type_table, summary_table
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split, resolve_data_dir
from slcolm_dspy.data.paths import output_dir, output_file
from slcolm_dspy.data.readers import read_records
from slcolm_dspy.data.replay_pack import ReplayPack
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.evaluate.paper import entity_strings
from slcolm_dspy.guide.backends import DEFAULT_MAX_TOKENS
from slcolm_dspy.replay import choose_sources, choose_w, load_w_rules, score_run, score_slm

console = make_console()


@reports_errors
def evaluate(
    pred: Annotated[
        Path | None, typer.Option("--pred", help="Predicted records (JSONL or any supported format).")
    ] = None,
    gold: Annotated[
        Path | None, typer.Option("--gold", help="Gold records (corpus file, JSONL, SpERT, replay gold).")
    ] = None,
    program: Annotated[
        Path | None,
        typer.Option(
            help="A compiled program: run it on --split and report every system (no --pred/--gold)."
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="With --program: the split to evaluate on.")] = "test",
    limit: Annotated[int | None, typer.Option(min=1, help="With --program: the first N sentences.")] = None,
    lm: Annotated[str | None, typer.Option(help="With --program: another LLM than compiled with.")] = None,
    api_base: Annotated[str | None, typer.Option(help="With --program: an OpenAI-compatible server.")] = None,
    slm: Annotated[Path | None, typer.Option(help="With --program: the program's SLM, if it moved.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="With --program: report directory (default PROGRAM/eval-SPLIT).")
    ] = None,
    concurrency: ConcurrencyOption = 1,
    max_tokens: MaxTokensOption = DEFAULT_MAX_TOKENS,
    data: DataOption = None,
    protocol: Annotated[
        str, typer.Option(help="paper (the authors' string matching) or strict (offsets).")
    ] = "paper",
    entity_filter: Annotated[
        Path | None,
        typer.Option(
            help="paper only: records whose entity strings are the only ones a predicted pair may use."
        ),
    ] = None,
    per_type: Annotated[bool, typer.Option("--per-type", help="Also print the per-type table.")] = False,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare", help="With --program: also run the guided LLM and every merge policy for comparison."
        ),
    ] = False,
    as_json: Annotated[Path | None, typer.Option("--json", help="Also write the metrics here.")] = None,
    schema_name: SchemaOption = "chisre",
    skip_bad: SkipBadOption = False,
) -> None:
    """Score predictions against gold (--pred/--gold), or a compiled program on a split (--program):
    micro/macro P/R/F1 under both protocols, head/tail macro, per type, NER."""
    output_file(as_json, "--json")
    if out is not None:
        output_dir(out)
    if program is not None:
        from slcolm_dspy.cli.program_cmds import evaluate_program

        if pred is not None or gold is not None:
            raise SlcolmError("--program evaluates on --split: leave out --pred and --gold")
        evaluate_program(
            program,
            split,
            limit=limit,
            lm=lm,
            api_base=api_base,
            slm=slm,
            out=out,
            concurrency=concurrency,
            max_tokens=max_tokens,
            data=data,
            compare=compare,
        )
        return
    if pred is None or gold is None:
        raise SlcolmError("give --pred and --gold, or --program")
    schema = load_schema(schema_name)
    if protocol not in ("paper", "strict"):
        raise SlcolmError(f"--protocol must be paper or strict, not {protocol!r}")
    gold_records, gold_report = read_records(gold, schema, skip_bad=skip_bad)
    pred_records, pred_report = read_records(pred, schema, skip_bad=skip_bad)
    report_skipped(gold_report)
    report_skipped(pred_report)
    allowed = None
    if entity_filter is not None:
        if protocol != "paper":
            raise SlcolmError("--entity-filter applies to the paper protocol only")
        filter_records, _ = read_records(entity_filter, schema)
        matcher = RelationEvaluator(gold_records, schema)
        pairs, _ = matcher.pair_up(filter_records)
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
    console.print(summary_table(f"{protocol} protocol, {result['sentences']} sentences", {pred.name: result}))
    if per_type:
        console.print(per_type_table(result, set(schema.head_types)))
    if as_json:
        as_json.write_text(json.dumps(result, ensure_ascii=False, indent=1))


def _train_counts(data_dir: Path, schema_name: str) -> Counter[str]:
    schema = load_schema(schema_name)
    records, _ = load_split(data_dir, "train", schema)
    return Counter(rel.type for r in records for rel in r.relations)


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
    replay_pack = ReplayPack.load(pack_dir, schema)
    expected_runs: dict[str, Any] = replay_pack.expected.get("runs", {})
    out: dict[str, Any] = {"recorded": {}, "modes": {}, "w_lists": {}}

    recorded = Table(title=f"recorded runs, paper protocol ({pack_dir})", title_justify="left")
    for col in (
        "run",
        "settings",
        "micro P / R / F1",
        "macro P / R / F1",
        "expected micro / macro F1",
        "match",
    ):
        recorded.add_column(col, justify="left" if col in ("run", "settings") else "right")
    mismatches = 0
    for run in replay_pack.runs:
        settings = expected_runs.get(run, {}).get("settings", {"merge_mode": 0})
        mode, w = str(settings["merge_mode"]), settings.get("W") or []
        result = score_run(replay_pack, run, schema, mode, llm_types=w)  # type: ignore[arg-type]
        out["recorded"][run] = {"settings": settings, "result": result}
        exp = expected_runs.get(run, {}).get("expected")
        got = [round(100 * result["micro_f1"], 2), round(100 * result["macro_f1"], 2)]
        if exp:
            want = [exp["micro_pct"][2], exp["macro_pct"][2]]
            ok = got == want
            mismatches += not ok
            check = f"{want[0]:.2f} / {want[1]:.2f}", "yes" if ok else "NO"
        else:
            check = ("-", "-")
        label = f"mode {mode}" + (f", W = {settings.get('W_name', len(w))}" if w else "")
        recorded.add_row(
            run,
            label,
            f"{pct(result['micro_p'])} / {pct(result['micro_r'])} / {pct(result['micro_f1'])}",
            f"{pct(result['macro_p'])} / {pct(result['macro_r'])} / {pct(result['macro_f1'])}",
            *check,
        )
    console.print(recorded)

    slm_test = score_slm(replay_pack.test_gold, replay_pack.test_slm, schema)
    slm_dev = score_slm(replay_pack.dev_gold, replay_pack.dev_slm, schema) if replay_pack.dev_slm else None
    alone = {"SLM alone, test": slm_test}
    if slm_dev:
        alone["SLM alone, dev (318)"] = slm_dev
    console.print(summary_table("recorded SLM, paper protocol", alone))
    out["slm"] = {"test": slm_test, "dev": slm_dev}

    # W lists: the authors' (chosen on test) and ours (from train counts and SLM dev scores only).
    w_lists: dict[str, list[str]] = {}
    authors_w = replay_pack.expected.get("W_lists", {})
    if "K12_ernie" in authors_w:
        w_lists["authors K12 (test-chosen)"] = authors_w["K12_ernie"]
    counts = _train_counts(data_dir, schema_name)
    per_type: dict[str, dict[str, str]] = {}
    for rule in load_w_rules():
        if rule.source == "slm_dev" and slm_dev is None:
            continue
        if rule.per_type:
            assert slm_dev is not None
            per_type[rule.name] = choose_sources(rule, schema, slm_dev, counts)
            continue
        w_lists[rule.name] = choose_w(rule, schema, slm_dev, counts)
    for name, w in w_lists.items():
        console.print(f"W {name} ({len(w)}): {' '.join(w)}")
    for name, sources in per_type.items():
        for source in ("llm", "union"):
            chosen = [t for t, s in sources.items() if s == source]
            console.print(f"per-type {name}, {source} ({len(chosen)}): {' '.join(chosen)}")
    out["w_lists"] = w_lists
    out["per_type_sources"] = per_type

    settings_rows: list[tuple[str, str, list[str], float | None]] = [("mode 0 (LLM alone)", "0", [], None)]
    settings_rows.append(("mode 1 (union)", "1", [], None))
    settings_rows += [(f"mode 2 (union, SLM p > {h})", "2", [], h) for h in (0.5, 0.7, 0.9)]
    for name, w in w_lists.items():
        settings_rows.append((f"mode 3, W = {name}", "3", w, None))
    for name, w in w_lists.items():
        settings_rows.append((f"clean mode 3, W = {name}", "3-clean", w, None))
    settings_rows.append(("mode 4 (SLM wins overlap)", "4", [], None))
    source_rows = [(f"per-type, rule = {name}", sources) for name, sources in per_type.items()]

    modes = Table(title="merge modes on the recorded outputs: micro / macro F1", title_justify="left")
    modes.add_column("setting")
    for run in replay_pack.runs:
        modes.add_column(run, justify="right")
    for label, mode, w, h in settings_rows:
        cells = []
        for run in replay_pack.runs:
            r = score_run(replay_pack, run, schema, mode, llm_types=w, threshold=h)  # type: ignore[arg-type]
            out["modes"].setdefault(label, {})[run] = r
            cells.append(f"{pct(r['micro_f1'])} / {pct(r['macro_f1'])}")
        modes.add_row(label, *cells)
    for label, sources in source_rows:
        cells = []
        for run in replay_pack.runs:
            r = score_run(replay_pack, run, schema, "1", sources=sources)
            out["modes"].setdefault(label, {})[run] = r
            cells.append(f"{pct(r['micro_f1'])} / {pct(r['macro_f1'])}")
        modes.add_row(label, *cells)
    console.print(modes)
    if as_json:
        as_json.write_text(json.dumps(out, ensure_ascii=False, indent=1))
    if mismatches:
        raise SlcolmError(f"{mismatches} recorded run(s) do not reproduce expected.json")
