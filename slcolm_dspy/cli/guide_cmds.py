"""`slcolm guide` (run the LLM stage) and `slcolm serve` (the local LLM server on its own)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from slcolm_dspy.cli.errors import reports_errors, say_llm_failures
from slcolm_dspy.cli.options import (
    ApiBaseOption,
    ConcurrencyOption,
    DataOption,
    DemoPoolOption,
    EmbedderOption,
    LMOption,
    MaxTokensOption,
    RetriesOption,
    SchemaOption,
    SLMDirOption,
    one_of,
)
from slcolm_dspy.cli.render import make_console, progress_bar, summary_table
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema, load_schema
from slcolm_dspy.data.corpus import load_split, resolve_data_dir
from slcolm_dspy.data.paths import output_dir
from slcolm_dspy.data.readers import read_records
from slcolm_dspy.guide.backends import DEFAULT_MAX_TOKENS
from slcolm_dspy.guide.journal import RunJournal

if TYPE_CHECKING:
    from slcolm_dspy.guide.pipeline import Guide, GuideConfig

console = make_console()


def _records(split: str, data_dir: Path, schema: Schema) -> list[Sentence]:
    if Path(split).suffix in (".json", ".jsonl"):
        return read_records(Path(split), schema)[0]
    return load_split(data_dir, split, schema)[0]


# The options of `slcolm guide`, named once (the command's signature stays one line each).
SplitOpt = Annotated[str, typer.Option("--split", help="dev, test, train, or a records file.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N sentences.")]
ModuleOpt = Annotated[
    str, typer.Option("--module", help="extract (SLCoLM) or choice (QA4RE on uncertain pairs).")
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Run directory. Default: runs/guide/<module>-<split>.")
]
DemosOpt = Annotated[int, typer.Option("--demos", min=0, help="Demonstrations per prompt.")]
DemoSourceOpt = Annotated[
    str, typer.Option("--demo-source", help="sentence (embeddings) or slm (SLM representations).")
]
DemoOrderOpt = Annotated[
    str,
    typer.Option(
        "--demo-order", help="ascending (most similar next to the query, as the paper) or descending."
    ),
]
DefinitionsOpt = Annotated[int, typer.Option("--definitions", min=1, help="At most this many definitions.")]


@reports_errors
def guide(
    split: SplitOpt = "dev",
    limit: LimitOpt = None,
    lm: LMOption = "local",
    api_base: ApiBaseOption = None,
    slm: SLMDirOption = Path("runs/slm"),
    module: ModuleOpt = "extract",
    out: OutOpt = None,
    demos: DemosOpt = 2,
    demo_source: DemoSourceOpt = "sentence",
    demo_order: DemoOrderOpt = "ascending",
    demo_pool: DemoPoolOption = "dev",
    definitions: DefinitionsOpt = 12,
    concurrency: ConcurrencyOption = 1,
    retries: RetriesOption = 3,
    max_tokens: MaxTokensOption = DEFAULT_MAX_TOKENS,
    embedder: EmbedderOption = "e5",
    data: DataOption = None,
    schema_name: SchemaOption = "chisre",
) -> None:
    """Run the LLM stage on a split; write grounded predictions that `slcolm evaluate` scores."""
    if out is not None:
        output_dir(out)
    if demo_pool == "test":
        raise SlcolmError("--demo-pool test is refused: demonstrations never come from the test split")
    config = _guide_config(module, demos, demo_source, demo_order, definitions)
    schema = load_schema(schema_name)
    data_dir = resolve_data_dir(data)
    gold = _records(split, data_dir, schema)[:limit]
    pool = load_split(data_dir, demo_pool, schema)[0] if demos else []
    run_dir = out or Path("runs/guide") / f"{module}-{Path(split).stem}"
    settings = dict(lm=lm, api_base=api_base, split=split, limit=limit, slm=str(slm), demo_pool=demo_pool)
    with console.status("loading the SLM, the embedder and the demonstration pool"):
        from slcolm_dspy.guide.pipeline import Guide

        helper = Guide.from_files(schema, slm, embedder, pool, config)
    limits = dict(concurrency=concurrency, retries=retries, max_tokens=max_tokens)
    run = _run_guide(helper, gold, run_dir, settings, **limits)
    _report_guide(run, gold, run_dir, schema, split, module)


def _guide_config(
    module: str, demos: int, demo_source: str, demo_order: str, definitions: int
) -> GuideConfig:
    """The guide settings from the command's options, each checked against its choices."""
    from slcolm_dspy.guide.pipeline import GuideConfig

    return GuideConfig(
        module=one_of("--module", module, ("extract", "choice")),  # type: ignore[arg-type]
        demos=demos,
        demo_source=one_of("--demo-source", demo_source, ("sentence", "slm")),  # type: ignore[arg-type]
        demo_order=one_of("--demo-order", demo_order, ("ascending", "descending")),  # type: ignore[arg-type]
        max_definitions=definitions,
    )


def _run_guide(
    helper: Guide,
    gold: list[Sentence],
    run_dir: Path,
    settings: dict,
    *,
    concurrency: int,
    retries: int,
    max_tokens: int,
) -> dict:
    """The guide run, with the LLM opened for it (a local server started and stopped)."""
    from slcolm_dspy.core.cache import cache_dir
    from slcolm_dspy.guide.backends import LMSpec, open_lm
    from slcolm_dspy.guide.faults import RetryPolicy
    from slcolm_dspy.guide.pipeline import run_guide

    # The LLM stage sees text only: gold annotations are stripped before anything is built.
    inputs = [g.with_predictions((), ()) for g in gold]
    spec = LMSpec(settings["lm"], api_base=settings["api_base"], max_tokens=max_tokens)
    run_dir.mkdir(parents=True, exist_ok=True)
    with (
        open_lm(spec, cache_dir(), parallel=concurrency, log=run_dir / "server.log") as model,
        progress_bar(console, f"{helper.config.module} via {settings['lm']}") as (_, on_done),
    ):
        retry = RetryPolicy(retries=retries)
        return run_guide(
            helper,
            inputs,
            model,
            run_dir,
            concurrency=concurrency,
            retry=retry,
            settings=settings,
            on_done=on_done,
        )


def _report_guide(
    result: dict, gold: list[Sentence], run_dir: Path, schema: Schema, split: str, module: str
) -> None:
    """Score the run against the gold where there is any, store the scores in run.json, print."""
    from slcolm_dspy.evaluate import PROTOCOLS, RelationEvaluator

    journal = RunJournal(run_dir)
    predictions = list(journal.read_predictions(schema).values())  # in the journal's order
    slm_predictions = list(journal.read_slm(schema).values())
    scores = {}
    if any(g.relations for g in gold):
        for protocol in PROTOCOLS:
            evaluator = RelationEvaluator(gold, schema, protocol)
            scores[f"SLM alone ({protocol})"] = evaluator(slm_predictions)
            scores[f"{module} ({protocol})"] = evaluator(predictions)
        console.print(summary_table(f"{split}: {len(gold)} sentences", scores))
    result["scores"] = {k: {m: v[m] for m in ("micro_f1", "macro_f1", "ner_f1")} for k, v in scores.items()}
    journal.write_summary(result)
    console.print(
        f"{result['sentences']} new sentences ({result['resumed']} resumed), "
        f"{result['llm_calls']} LLM calls, "
        f"{result['prompt_tokens']} prompt tokens, {result['seconds_per_sentence']:.1f} s/sentence; "
        f"predictions in {run_dir / 'predictions.jsonl'}"
    )
    say_llm_failures(result["failed"], result["llm_sentences"], result["total"]["failures"])


@reports_errors
def serve(
    model: Annotated[str, typer.Option(help="A local model name.")] = "qwen2.5-coder-0.5b",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0: a free port.")] = 0,
    n_ctx: Annotated[int, typer.Option(min=256)] = 4096,
    parallel: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve a local model over loopback (OpenAI-compatible) for other clients, until Ctrl-C."""
    import os

    from slcolm_dspy.core.cache import cache_dir
    from slcolm_dspy.guide.local_model import assemble
    from slcolm_dspy.guide.server import free_port, serve_forever

    gguf = assemble(model, cache_dir() / "models")
    serve_forever(
        gguf, port or free_port(), n_ctx=n_ctx, threads=os.cpu_count() or 1, parallel=parallel, alias=model
    )
