"""A compiled program evaluated on gold records: its guide run (stored and reused), every system
scored by the evaluator (SLM alone, the guided LLM, each merge policy kind with its dev-chosen
parameter, the compiled policy), written as report.json, the per-type chart and the HTML page.

The LLM is asked only for what the compiled policy needs: a program whose policy is the SLM
alone makes no LLM call, and the guided comparison rows come with `compare=True`."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.evaluate.report import System, build_report, write_chart, write_html, write_json
from slcolm_dspy.guide.journal import RunJournal
from slcolm_dspy.merge.policy import MergePolicy
from slcolm_dspy.program.apply import DEFAULT_OPTIONS, RunOptions, lm_for, run_guided
from slcolm_dspy.program.artifact import CompiledProgram
from slcolm_dspy.program.outcome import GuideOutcome

LLM_ROW = "LLM (guided, routed)"


def _stamp(compiled: CompiledProgram, model: str, api_base: str | None) -> str:
    """What a stored run depends on: the program, its SLM and the LLM."""
    parts = [(compiled.directory / n).read_bytes() for n in ("program.json", "settings.json", "slm.json")]
    return hashlib.sha256(b"".join(parts) + f"{model}|{api_base}".encode()).hexdigest()


def guided_run(
    compiled: CompiledProgram,
    gold: Sequence[Sentence],
    run_dir: Path,
    options: RunOptions = DEFAULT_OPTIONS,
    *,
    on_done: Callable[[int, int], None] | None = None,
) -> tuple[GuideOutcome, dict[str, Any]]:
    """The program's guide run over the gold sentences' text, made once and then read back; a
    run made by another program, SLM or LLM is discarded."""
    inputs = [g.with_predictions((), ()) for g in gold]
    model, base = lm_for(compiled, options.lm, options.api_base)
    stamp, stamp_path = _stamp(compiled, model, base), run_dir / "program.sha256"
    if run_dir.exists() and (not stamp_path.is_file() or stamp_path.read_text().strip() != stamp):
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stamp_path.write_text(stamp + "\n")
    outcome, _ = run_guided(compiled, inputs, run_dir, options, settings={"lm": model}, on_done=on_done)
    return outcome, RunJournal(run_dir).totals()


def slm_run(
    compiled: CompiledProgram, gold: Sequence[Sentence], run_dir: Path, options: RunOptions = DEFAULT_OPTIONS
) -> list[Sentence]:
    """The program's SLM records for the gold sentences' text, predicted once and read back (a
    run of another SLM is discarded)."""
    from slcolm_dspy.program.apply import guide_for

    inputs = [g.with_predictions((), ()) for g in gold]
    journal, stamp_path = RunJournal(run_dir), run_dir / "slm.sha256"
    stamp = hashlib.sha256((compiled.directory / "slm.json").read_bytes()).hexdigest()
    if stamp_path.is_file() and stamp_path.read_text().strip() == stamp:
        by_id = journal.read_slm(compiled.schema)
        if all(r.id in by_id for r in inputs):
            return [by_id[r.id] for r in inputs]
    records = guide_for(compiled, options.slm, options.data, options.device).slm.predict(inputs)
    journal.write_slm(records)
    stamp_path.write_text(stamp + "\n")
    return records


def evaluate_on(
    compiled: CompiledProgram,
    gold: Sequence[Sentence],
    report_dir: Path,
    options: RunOptions = DEFAULT_OPTIONS,
    *,
    title: str,
    split: str | None = None,
    compare: bool = False,
    on_done: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run (or read back) the program on `gold`, score its systems, write the report files.

    A policy of the SLM alone needs no LLM: its report has the SLM and the compiled rows only,
    unless `compare` asks for the guided run and every merge policy on it as well."""
    policy = compiled.policy
    uses_llm = policy.kind != "slm"
    if not uses_llm and not compare:
        return _slm_only_report(compiled, gold, report_dir, options, title=title, split=split)
    outcome, total = guided_run(compiled, gold, report_dir / "run", options, on_done=on_done)
    calls, tokens, seconds = total.get("llm_calls", 0), total.get("prompt_tokens", 0), total.get("seconds")
    llm_sentences = total.get("llm_sentences", 0)
    share = llm_sentences / max(1, len(gold))

    def merged(p: MergePolicy) -> list[Sentence]:
        return p.apply_all(outcome.llm, outcome.slm)

    systems = [
        System("SLM alone", outcome.slm, note="the supervised model, no LLM"),
        System(LLM_ROW, outcome.llm, calls, tokens, seconds, note="the guide stage's own records"),
    ]
    for blob in compiled.dev_metrics.get("policies", []):
        other = MergePolicy.from_json(blob)
        if other.kind != "llm":
            systems.append(System(other.label, merged(other), calls, tokens, seconds, note="chosen on dev"))
    compiled_name = f"compiled: {policy.label}"
    systems.append(
        System(
            compiled_name,
            merged(policy),
            calls if uses_llm else 0,
            tokens if uses_llm else 0,
            seconds if uses_llm else 0.0,
            note="the program's policy",
        )
    )
    chars_n = total.get("prompt_chars_n", 0)
    return _write_report(
        compiled,
        gold,
        systems,
        report_dir,
        options,
        title=title,
        split=split,
        llm_sentences=llm_sentences,
        llm_sentence_share=share if uses_llm else 0.0,  # the compiled program's own share
        llm_sentence_share_of_run=share,  # the guided run shown for comparison
        prompt_chars_mean=(total.get("prompt_chars_sum", 0) / chars_n) if chars_n else 0.0,
    )


def _slm_only_report(
    compiled: CompiledProgram,
    gold: Sequence[Sentence],
    report_dir: Path,
    options: RunOptions,
    *,
    title: str,
    split: str | None,
) -> dict[str, Any]:
    records = slm_run(compiled, gold, report_dir / "run-slm", options)
    systems = [
        System("SLM alone", records, note="the supervised model, no LLM"),
        System(f"compiled: {compiled.policy.label}", records, 0, 0, 0.0, note="the program's policy"),
    ]
    return _write_report(
        compiled,
        gold,
        systems,
        report_dir,
        options,
        title=title,
        split=split,
        llm_sentences=0,
        llm_sentence_share=0.0,
        llm_sentence_share_of_run=0.0,
        prompt_chars_mean=0.0,
    )


def _train_counts(compiled: CompiledProgram, options: RunOptions) -> dict[str, int] | None:
    """Train relations per type, as the program's SLM recorded them (None for an SLM trained
    before it did so: the report then has no tail chart)."""
    from slcolm_dspy.slm.checkpoint import recorded_train_counts  # here: torch has loaded by now

    counts = recorded_train_counts(compiled.slm_dir(options.slm))
    return {t: counts.get(t, 0) for t in compiled.schema.relation_types} if counts else None


def _write_report(
    compiled: CompiledProgram,
    gold: Sequence[Sentence],
    systems: list[System],
    report_dir: Path,
    options: RunOptions,
    *,
    title: str,
    split: str | None,
    **numbers: Any,
) -> dict[str, Any]:
    compiled_name = systems[-1].name
    report = build_report(
        gold,
        systems,
        compiled.schema,
        program=str(compiled.directory),
        split=split,
        lm=lm_for(compiled, options.lm, options.api_base)[0],
        compiled=compiled_name,
        train_counts=_train_counts(compiled, options),
        **numbers,
    )
    report_dir.mkdir(parents=True, exist_ok=True)
    write_json(report, report_dir / "report.json")
    chart = report_dir / "per_type_f1.png"
    shown = [n for n in ("SLM alone", LLM_ROW) if any(x.name == n for x in systems)] + [compiled_name]
    write_chart(report, compiled.schema, shown, chart)
    write_html(
        report,
        gold,
        systems[-1].records,
        compiled.schema,
        report_dir / "report.html",
        title=title,
        chart=chart.name,
        system=compiled_name,
    )
    return report
