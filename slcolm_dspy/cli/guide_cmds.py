"""`slcolm guide` (run the LLM stage) and `slcolm serve` (the local LLM server on its own)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from slcolm_dspy.cli.errors import reports_errors
from slcolm_dspy.cli.options import (
    ConcurrencyOption,
    DataOption,
    MaxTokensOption,
    RetriesOption,
    SchemaOption,
)
from slcolm_dspy.cli.render import make_console, progress_bar, summary_table
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema, load_schema
from slcolm_dspy.data.corpus import load_split, resolve_data_dir
from slcolm_dspy.data.paths import output_dir
from slcolm_dspy.data.readers import read_records
from slcolm_dspy.guide.backends import DEFAULT_MAX_TOKENS

console = make_console()


def _records(split: str, data_dir: Path, schema: Schema) -> list[Sentence]:
    if Path(split).suffix in (".json", ".jsonl"):
        return read_records(Path(split), schema)[0]
    return load_split(data_dir, split, schema)[0]


@reports_errors
def guide(
    split: Annotated[str, typer.Option(help="dev, test, train, or a records file.")] = "dev",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N sentences.")] = None,
    lm: Annotated[str, typer.Option(help="local[:name] or any LiteLLM model string.")] = "local",
    api_base: Annotated[str | None, typer.Option(help="An OpenAI-compatible server for --lm.")] = None,
    slm: Annotated[Path, typer.Option(help="A trained SLM directory.")] = Path("runs/slm"),
    module: Annotated[
        str, typer.Option(help="extract (SLCoLM) or choice (QA4RE on uncertain pairs).")
    ] = "extract",
    out: Annotated[
        Path | None, typer.Option(help="Run directory. Default: runs/guide/<module>-<split>.")
    ] = None,
    demos: Annotated[int, typer.Option(min=0, help="Demonstrations per prompt.")] = 2,
    demo_source: Annotated[
        str, typer.Option(help="sentence (embeddings) or slm (SLM representations).")
    ] = "sentence",
    demo_order: Annotated[
        str, typer.Option(help="ascending (most similar next to the query, as the paper) or descending.")
    ] = "ascending",
    demo_pool: Annotated[str, typer.Option(help="Split the demonstrations come from (never test).")] = "dev",
    definitions: Annotated[int, typer.Option(min=1, help="At most this many definitions.")] = 12,
    concurrency: ConcurrencyOption = 1,
    retries: RetriesOption = 3,
    max_tokens: MaxTokensOption = DEFAULT_MAX_TOKENS,
    embedder: Annotated[str, typer.Option(help="e5 or a local sentence-transformers directory.")] = "e5",
    data: DataOption = None,
    schema_name: SchemaOption = "chisre",
) -> None:
    """Run the LLM stage on a split; write grounded predictions that `slcolm evaluate` scores."""
    if out is not None:
        output_dir(out)
    from slcolm_dspy.evaluate import RelationEvaluator
    from slcolm_dspy.guide.backends import LMSpec, open_lm
    from slcolm_dspy.guide.faults import RetryPolicy
    from slcolm_dspy.guide.pipeline import Guide, GuideConfig, run_guide
    from slcolm_dspy.slm.encoders import cache_dir

    if module not in ("extract", "choice"):
        raise SlcolmError(f"--module must be extract or choice, not {module!r}")
    if demo_source not in ("sentence", "slm"):
        raise SlcolmError(f"--demo-source must be sentence or slm, not {demo_source!r}")
    if demo_order not in ("ascending", "descending"):
        raise SlcolmError(f"--demo-order must be ascending or descending, not {demo_order!r}")
    if demo_pool == "test":
        raise SlcolmError("--demo-pool test is refused: demonstrations never come from the test split")
    schema = load_schema(schema_name)
    data_dir = resolve_data_dir(data)
    gold = _records(split, data_dir, schema)[:limit]
    # The LLM stage sees text only: gold annotations are stripped before anything is built.
    inputs = [g.with_predictions((), ()) for g in gold]
    pool = load_split(data_dir, demo_pool, schema)[0] if demos else []
    run_dir = out or Path("runs/guide") / f"{module}-{Path(split).stem}"
    config = GuideConfig(
        module=module,  # type: ignore[arg-type]
        demos=demos,
        demo_source=demo_source,  # type: ignore[arg-type]
        demo_order=demo_order,  # type: ignore[arg-type]
        max_definitions=definitions,
    )
    with console.status("loading the SLM, the embedder and the demonstration pool"):
        helper = Guide.from_files(schema, slm, embedder, pool, config)
    spec = LMSpec(lm, api_base=api_base, max_tokens=max_tokens)
    settings = {
        "lm": lm,
        "api_base": api_base,
        "split": split,
        "limit": limit,
        "slm": str(slm),
        "demo_pool": demo_pool,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    with (
        open_lm(spec, cache_dir(), parallel=concurrency, log=run_dir / "server.log") as model,
        progress_bar(console, f"{module} via {lm}") as (_, on_done),
    ):
        result = run_guide(
            helper,
            inputs,
            model,
            run_dir,
            concurrency=concurrency,
            retry=RetryPolicy(retries=retries),
            settings=settings,
            on_done=on_done,
        )
    predictions = read_records(run_dir / "predictions.jsonl", schema)[0]
    slm_predictions = read_records(run_dir / "slm.jsonl", schema)[0]
    scores = {}
    if any(g.relations for g in gold):
        for protocol in ("paper", "strict"):
            evaluator = RelationEvaluator(gold, schema, protocol)  # type: ignore[arg-type]
            scores[f"SLM alone ({protocol})"] = evaluator(slm_predictions)
            scores[f"{module} ({protocol})"] = evaluator(predictions)
        console.print(summary_table(f"{split}: {len(gold)} sentences", scores))
    result["scores"] = {k: {m: v[m] for m in ("micro_f1", "macro_f1", "ner_f1")} for k, v in scores.items()}
    (run_dir / "run.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    console.print(
        f"{result['sentences']} new sentences ({result['resumed']} resumed), "
        f"{result['llm_calls']} LLM calls, "
        f"{result['prompt_tokens']} prompt tokens, {result['seconds_per_sentence']:.1f} s/sentence; "
        f"predictions in {run_dir / 'predictions.jsonl'}"
    )


@reports_errors
def serve(
    model: Annotated[str, typer.Option(help="A local model name.")] = "qwen2.5-coder-0.5b",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0: a free port.")] = 0,
    n_ctx: Annotated[int, typer.Option(min=256)] = 4096,
    parallel: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve a local model over loopback (OpenAI-compatible) for other clients, until Ctrl-C."""
    import os

    from slcolm_dspy.guide.local_model import assemble
    from slcolm_dspy.guide.server import free_port, serve_forever
    from slcolm_dspy.slm.encoders import cache_dir

    gguf = assemble(model, cache_dir() / "models")
    serve_forever(
        gguf, port or free_port(), n_ctx=n_ctx, threads=os.cpu_count() or 1, parallel=parallel, alias=model
    )
