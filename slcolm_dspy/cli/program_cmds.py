"""`slcolm compile`, `slcolm extract` and `slcolm evaluate --program`: compiled programs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from slcolm_dspy.cli.errors import reports_errors, say_llm_failures
from slcolm_dspy.cli.options import (
    ApiBaseOption,
    ConcurrencyOption,
    DataOption,
    DemoPoolOption,
    DeviceOption,
    EmbedderOption,
    LMOption,
    MaxTokensOption,
    SchemaOption,
    SLMDirOption,
    one_of,
)
from slcolm_dspy.cli.render import group_macro, make_console, pct, progress_bar
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema, load_schema
from slcolm_dspy.data.corpus import load_split, resolve_data_dir
from slcolm_dspy.data.paths import output_dir, output_file
from slcolm_dspy.guide.backends import DEFAULT_MAX_TOKENS

if TYPE_CHECKING:
    from slcolm_dspy.program.apply import RunOptions
    from slcolm_dspy.program.compile import CompileResult

console = make_console()

# The options of `slcolm compile`, named once.
PresetOpt = Annotated[
    str, typer.Option("--preset", help="An optimizer preset in optimize/ (local, api) or a TOML file.")
]
ProgramDirOpt = Annotated[Path, typer.Option("--out", help="The program directory to write.")]
SampleOpt = Annotated[
    int | None, typer.Option("--sample", min=2, help="Dev sentences to score on (preset's default).")
]
BudgetOpt = Annotated[
    int | None, typer.Option("--budget-calls", min=1, help="LLM calls the search may spend.")
]
ShareOpt = Annotated[
    float | None, typer.Option("--max-llm-share", min=0.0, max=1.0, help="Most sentences sent to the LLM.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the dev sample.")]


@reports_errors
def compile_program(
    lm: LMOption = "local",
    api_base: ApiBaseOption = None,
    preset: PresetOpt = "local",
    slm: SLMDirOption = Path("runs/slm"),
    out: ProgramDirOpt = Path("programs/default"),
    sample: SampleOpt = None,
    budget_calls: BudgetOpt = None,
    max_llm_share: ShareOpt = None,
    seed: SeedOpt = 0,
    demo_pool: DemoPoolOption = "dev",
    embedder: EmbedderOption = "e5",
    concurrency: ConcurrencyOption = 1,
    max_tokens: MaxTokensOption = DEFAULT_MAX_TOKENS,
    data: DataOption = None,
    schema_name: SchemaOption = "chisre",
) -> None:
    """Compile the LLM stage on dev: search prompts, routing and merge policy; save a program."""
    from dataclasses import replace

    from slcolm_dspy.program.compile import CompileRequest, compile_on_dev
    from slcolm_dspy.teleprompt import candidate_table_rows, load_preset

    output_dir(out)
    overrides = {"sample": sample, "budget_calls": budget_calls, "max_llm_share": max_llm_share}
    space = replace(load_preset(preset), **{k: v for k, v in overrides.items() if v is not None})
    request = CompileRequest(
        space, load_schema(schema_name), resolve_data_dir(data), slm, out, lm, api_base, seed, demo_pool,
        embedder, concurrency, max_tokens,
    )  # fmt: skip
    _print_space(space)
    with progress_bar(console, "dev sample") as (bar, on_done):
        result = compile_on_dev(
            request, on_status=bar.console.print, on_done=on_done, progress=bar.console.print
        )
    search = result.search
    _print_candidates(candidate_table_rows(search.candidates), len(search.candidates))
    _print_refused(search.refused, space.max_llm_share)
    _print_compiled(result, out)


def _print_space(space: Any) -> None:
    console.print(
        f"compiling with preset {space.name} ({space.description}) on at most {space.sample} dev sentences, "
        f"at most {space.budget_calls} LLM calls, at most {space.max_llm_share:.0%} of sentences to the LLM"
    )


def _print_compiled(result: CompileResult, out: Path) -> None:
    search = result.search
    c, s = result.dev_scores["compiled.paper"], result.dev_scores["slm.paper"]
    console.print(
        f"compiled policy: {result.program.policy.label}; dev sample macro-F1 {pct(c['macro_f1'])} "
        f"(SLM {pct(s['macro_f1'])}), micro {pct(c['micro_f1'])} (SLM {pct(s['micro_f1'])}); "
        f"{result.llm_share:.0%} of dev sentences to the LLM; {search.calls_used} LLM calls in "
        f"{result.seconds / 60:.1f} min; program in {out}"
    )


def _print_refused(refused: list[tuple[dict[str, Any], Any, float]], cap: float) -> None:
    """Say why LLM settings are missing from the table: their routing sent too much to the LLM."""
    if not refused:
        return
    shares = sorted(share for _, _, share in refused)
    console.print(
        f"{len(refused)} LLM settings refused: their LLM share ({shares[0]:.0%}-{shares[-1]:.0%} of dev "
        f"sentences) exceeds --max-llm-share {cap:.0%}; raise it to consider them",
        markup=False,
    )
    # one line per routing band: the answer thresholds tried under a band share its LLM share
    bands: dict[str, tuple[float, int]] = {}
    for prompt, band, share in refused:
        key = f"{prompt} routing low={band.low} high={band.high} margin={band.margin} top_n={band.top_n}"
        bands[key] = (share, bands.get(key, (share, 0))[1] + 1)
    for key, (share, count) in sorted(bands.items(), key=lambda item: item[1][0])[:5]:
        console.print(f"  refused: {key} -> {share:.0%} to the LLM ({count} settings)", markup=False)


def _print_candidates(rows: list[Any], total: int) -> None:
    table = Table(
        title=f"candidates (best {len(rows)} of {total}; dev sample, paper protocol)", title_justify="left"
    )
    for col in (
        "#",
        "prompt",
        "routing low/high/margin",
        "thresholds",
        "policy",
        "LLM share",
        "macro F1",
        "micro F1",
        "chosen",
    ):
        table.add_column(
            col, justify="right" if col in ("#", "LLM share", "macro F1", "micro F1") else "left"
        )
    for c in rows:
        prompt = " ".join(f"{k}={v}" for k, v in c.prompt.items() if k != "module") or "-"
        routing = f"{c.routing.low}/{c.routing.high}/{c.routing.margin}" if c.routing else "-"
        limits = f"{c.thresholds.accept}/{c.thresholds.reject}/{c.thresholds.keep}" if c.thresholds else "-"
        table.add_row(
            str(c.number),
            f"{c.prompt.get('module')} {prompt}",
            routing,
            limits,
            c.policy.label,
            f"{c.llm_share:.0%}",
            pct(c.macro_f1),
            pct(c.micro_f1),
            "*" if c.chosen else "",
        )
    console.print(table)


def _read_inputs(path: Path, schema: Schema) -> list[Sentence]:
    from slcolm_dspy.data.readers import read_records
    from slcolm_dspy.data.text import read_text

    if path.suffix == ".txt":
        return read_text(path)
    if path.suffix in (".jsonl", ".json"):
        return [r.with_predictions((), ()) for r in read_records(path, schema)[0]]
    raise SlcolmError(f"{path}: give a .txt (running text) or .jsonl/.json (records) file")


DocumentsOpt = Annotated[
    bool,
    typer.Option(
        "--documents",
        help="INPUT holds whole documents (a .txt file, a folder of them, or JSONL with id and text):"
        " each is cut into units (overlapping windows where it has no punctuation) and comes back"
        " as one record with offsets into the document.",
    ),
]


ExtractOutOpt = Annotated[
    Path,
    typer.Option(
        help="Records with grounded triples (JSONL). With --documents, a name without .jsonl is a"
        " folder of 16 shards keyed by document id."
    ),
]


def _extract_documents(
    compiled: Any, program: Path, input_path: Path, out: Path, run: RunOptions, ray: Any
) -> None:
    """--documents: stream the documents through the program (here, or on Ray when `ray` is
    given), one record each appended to OUT."""
    from slcolm_dspy.data.documents import count_documents, iter_documents
    from slcolm_dspy.program.apply import extract_document_stream, lm_for

    (output_file if out.suffix == ".jsonl" else output_dir)(out)
    total = count_documents(input_path)
    model_name, _ = lm_for(compiled, run.lm, run.api_base)
    columns = (TextColumn(f"documents via {model_name}"), BarColumn(), MofNCompleteColumn())
    rate = (TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, *rate, console=console) as bar:
        task = bar.add_task("documents", total=total, rate="")

        def moved(summary: Any) -> None:
            seconds = bar.tasks[0].elapsed or 1e-9
            speed = f"{summary.characters / seconds:,.0f} chars/s"
            bar.update(task, completed=summary.documents + summary.resumed, rate=speed)

        if ray is None:
            done = extract_document_stream(compiled, iter_documents(input_path), out, run, on_document=moved)
        else:
            from slcolm_dspy.program.ray_engine import extract_document_stream_ray

            stream = iter_documents(input_path)
            done = extract_document_stream_ray(program, stream, out, run, ray, on_document=moved)
    console.print(
        f"{done.documents} documents ({done.resumed} already in {out}), {done.characters} characters in"
        f" {done.units} units ({done.windows} cut by length: no sentence punctuation there);"
        f" {done.llm_calls} LLM calls, {done.prompt_tokens} prompt /"
        f" {done.completion_tokens} completion tokens, cost ${done.cost:.4f} (LiteLLM's prices; 0 for a"
        f" local server) ({compiled.policy.label}); written to {out}"
    )
    # a document is written once its batch is done: asking again means extracting it again
    again = f"remove those documents from {out} and run again to ask for them"
    say_llm_failures(done.failed, done.llm_sentences, done.failures, again)


EngineOpt = Annotated[
    str, typer.Option(help="With --documents: local (this process) or ray (a Ray Data actor pool).")
]
RayAddressOpt = Annotated[
    str | None, typer.Option(help="A running Ray cluster (auto, ray://host:10001); default: start one here.")
]
ActorsOpt = Annotated[int, typer.Option(min=1, help="--engine ray: actors, each with the whole program.")]
ActorCpusOpt = Annotated[float, typer.Option(min=0.0, help="--engine ray: CPUs per actor.")]
ActorGpusOpt = Annotated[
    float,
    typer.Option(min=0.0, help="--engine ray: GPUs per actor; above 0 each actor runs its SLM on its GPU."),
]


@reports_errors
def extract(
    program: Annotated[Path, typer.Option(help="A compiled program directory.")],
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="A .txt (running text) or .jsonl file.")
    ],
    out: ExtractOutOpt,
    lm: Annotated[str | None, typer.Option(help="Another LLM than the one compiled with.")] = None,
    api_base: ApiBaseOption = None,
    slm: Annotated[Path | None, typer.Option(help="The program's SLM, if it moved.")] = None,
    concurrency: ConcurrencyOption = 1,
    max_tokens: MaxTokensOption = DEFAULT_MAX_TOKENS,
    data: DataOption = None,
    documents: DocumentsOpt = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    actors: ActorsOpt = 1,
    actor_cpus: ActorCpusOpt = 1.0,
    actor_gpus: ActorGpusOpt = 0.0,
    device: DeviceOption = "auto",
) -> None:
    """Apply a compiled program to text: SLM, guided LLM, merge; resumable."""
    from slcolm_dspy.program import load_program
    from slcolm_dspy.program.apply import RunOptions
    from slcolm_dspy.program.ray_engine import RayOptions

    one_of("--engine", engine, ("local", "ray"))
    if engine == "ray" and not documents:
        raise SlcolmError("--engine ray runs document streams: add --documents")
    compiled = load_program(program)
    run = RunOptions(lm, api_base, slm, data, concurrency, max_tokens, device)
    if not documents:
        return _extract_sentences(compiled, input_path, out, run)
    ray = RayOptions(ray_address, actors, actor_cpus, actor_gpus) if engine == "ray" else None
    _extract_documents(compiled, program, input_path, out, run, ray)


def _extract_sentences(compiled: Any, input_path: Path, out: Path, run: RunOptions) -> None:
    """Sentences (running text or records) through the program, all written at the end. A
    sentence of running text longer than a unit (no punctuation for pages) is read in windows
    and stitched back, never sent whole; records are run as given (their variants kept)."""
    from slcolm_dspy.data.writers import write_jsonl
    from slcolm_dspy.program.apply import extract_documents, extract_records, lm_for, run_usage

    output_file(out)
    records = _read_inputs(input_path, compiled.schema)
    if not records:
        raise SlcolmError(f"{input_path}: no sentences")
    windows = 0
    with progress_bar(console, f"extract via {lm_for(compiled, run.lm, run.api_base)[0]}") as (_, on_done):
        work_dir = out.parent / f"{out.name}.run"
        if input_path.suffix == ".txt":
            cut = extract_documents(compiled, records, work_dir, run, on_done=on_done)
            merged, calls, windows = cut.records, cut.llm_calls, cut.windows
        else:
            merged, calls = extract_records(compiled, records, work_dir, run, on_done=on_done)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(merged, out)
    triples = sum(len(r.relations) for r in merged)
    console.print(
        f"{len(merged)} sentences ({windows} windows cut from sentences over a unit's length),"
        f" {triples} triples ({compiled.policy.label}); {calls} LLM calls; written to {out}"
    )
    usage = run_usage(work_dir)
    say_llm_failures(usage.get("failed", 0), usage.get("llm_sentences", 0), usage.get("failures", {}))


def evaluate_program(
    program: Path, split: str, run: RunOptions, *, limit: int | None, out: Path | None, compare: bool = False
) -> None:
    """The report of a compiled program on a split: every system in one table."""
    from slcolm_dspy.program import load_program
    from slcolm_dspy.program.apply import lm_for
    from slcolm_dspy.program.evaluation import evaluate_on

    compiled = load_program(program)
    gold = load_split(resolve_data_dir(run.data), split, compiled.schema)[0][:limit]
    report_dir = out or program / (f"eval-{split}" + (f"-first{limit}" if limit else ""))
    model_name, _ = lm_for(compiled, run.lm, run.api_base)
    title = f"{program.name} on {split}"
    with progress_bar(console, f"{split} via {model_name}") as (_, on_done):
        report = evaluate_on(
            compiled, gold, report_dir, run, title=title, split=split, compare=compare, on_done=on_done
        )
    _print_report(report, f"{program.name} on {split}: {len(gold)} sentences, LLM {model_name}")
    files = f"{report_dir / 'report.json'}, {report_dir / 'per_type_f1.png'}, {report_dir / 'report.html'}"
    if compiled.policy.kind == "slm" and not compare:
        console.print(
            f"the compiled policy is the SLM alone: no LLM call (--compare adds the guided run); {files}"
        )
        return
    console.print(
        f"{report['llm_sentence_share_of_run']:.0%} of sentences reached the LLM in the guided run "
        f"({report['llm_sentences']}); report: {files}"
    )


def _print_report(report: dict[str, Any], title: str) -> None:
    table = Table(title=title, title_justify="left")
    columns = (
        "system",
        "paper micro",
        "paper macro",
        "strict micro",
        "strict macro",
        "head macro",
        "tail macro",
        "LLM calls",
        "prompt tokens",
        "time s",
    )
    for col in columns:
        table.add_column(col, justify="left" if col == "system" else "right")
    for row in report["systems"]:
        p, s = row["paper"], row["strict"]
        table.add_row(
            row["name"],
            pct(p["micro_f1"]),
            pct(p["macro_f1"]),
            pct(s["micro_f1"]),
            pct(s["macro_f1"]),
            group_macro(p, "head"),
            group_macro(p, "tail"),
            str(row["llm_calls"]),
            str(row["prompt_tokens"]),
            "-" if row["seconds"] is None else f"{row['seconds']:.0f}",
        )
    console.print(table)
