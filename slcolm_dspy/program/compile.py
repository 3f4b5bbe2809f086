"""Compiling a program on dev: the search over prompts, routing and merge policy (DevF1Search), the
dev scores of what it chose, and the program directory it writes. `slcolm compile` is a thin
layer over `compile_on_dev`; the test split is never read here.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence, relation_type_counts
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.guide.backends import DEFAULT_MAX_TOKENS, LMSpec, open_lm
from slcolm_dspy.guide.choice import top_two
from slcolm_dspy.guide.pipeline import Guide, GuideConfig
from slcolm_dspy.program.artifact import save_program, slm_reference
from slcolm_dspy.program.module import SLCoLMProgram
from slcolm_dspy.program.outcome import llm_view, routed_share
from slcolm_dspy.program.runner import GuideRunner
from slcolm_dspy.teleprompt import DevF1Search, SearchSpace, as_examples

DEV_SCORE_KEYS = ("micro_f1", "macro_f1", "head_macro_f1", "tail_macro_f1")


def dev_sample(dev: list[Sentence], size: int, seed: int) -> list[Sentence]:
    """A seeded sample of dev sentences, in corpus order. Sentences without relations stay in:
    what an LLM adds there is a false positive the score must see."""
    picked = sorted(random.Random(seed).sample(range(len(dev)), min(size, len(dev))))
    return [dev[i] for i in picked]


@dataclass(frozen=True)
class CompileRequest:
    """What to compile: the search space, the SLM, the data, and the run settings of the LLM
    (used for the search only; the program stores the LLM it was compiled with as provenance)."""

    space: SearchSpace
    schema: Schema
    data_dir: Path
    slm: Path
    out: Path
    lm: str = "local"
    api_base: str | None = None
    seed: int = 0
    demo_pool: str = "dev"
    embedder: str = "e5"
    concurrency: int = 1
    max_tokens: int = DEFAULT_MAX_TOKENS

    def __post_init__(self) -> None:
        if self.demo_pool == "test":
            raise SlcolmError(
                "--demo-pool test is refused: nothing is tuned or retrieved from the test split"
            )


@dataclass
class CompileResult:
    program: SLCoLMProgram
    search: DevF1Search
    records: list[Sentence]  # the dev sample scored on
    dev_scores: dict[str, dict[str, float]]  # "slm.paper", "compiled.strict", ...
    llm_share: float  # of the whole dev split, under the compiled routing
    seconds: float


def compile_on_dev(
    request: CompileRequest,
    *,
    on_status: Callable[[str], Any] = lambda _: None,
    on_done: Callable[[int, int], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CompileResult:
    """Search on the dev sample, score the choice on it, save the program directory."""
    space, schema = request.space, request.schema
    dev = load_split(request.data_dir, "dev", schema)[0]
    records = dev_sample(dev, space.sample, request.seed)
    train = load_split(request.data_dir, "train", schema)[0]
    train_counts = relation_type_counts(train)
    needs_pool = any(int(k) > 0 for k in space.prompt.get("demos", [0]))
    pool = load_split(request.data_dir, request.demo_pool, schema)[0] if needs_pool else []
    program = SLCoLMProgram(schema)
    on_status("loading the SLM and the embedder")
    guide = Guide.from_files(schema, request.slm, request.embedder, pool, program.config)
    started = time.monotonic()
    # the LLM share of a routing band, on the whole dev split: only the SLM's scores are needed
    on_status("scoring every dev sentence's entity pairs with the SLM")
    inputs = [r.with_predictions((), ()) for r in dev]
    dev_pairs = [
        [top_two(p.probabilities) for p in pairs] for _, pairs in guide.slm.predict_with_pair_scores(inputs)
    ]

    def share_of(config: GuideConfig) -> float:
        return routed_share(dev_pairs, config)

    # runs are kept per SLM: another SLM gives other hints, so its answers are not reused
    work = request.out / "compile" / slm_reference(request.slm)["sha256"][:12]
    for stale in request.out.glob("eval-*"):  # evaluations of an earlier program
        shutil.rmtree(stale)
    work.mkdir(parents=True, exist_ok=True)
    spec = LMSpec(request.lm, api_base=request.api_base, max_tokens=request.max_tokens)
    with open_lm(spec, _cache(), parallel=request.concurrency, log=work / "server.log") as model:
        runner = GuideRunner(guide, model, work, concurrency=request.concurrency, on_done=on_done)
        search = DevF1Search(
            space, runner, schema, train_counts=train_counts, share_of=share_of, progress=progress
        )
        compiled = search.compile(program, trainset=as_examples(records))
        policies = search.policies_for(compiled, records)
        if search.chosen_run is None:
            raise SlcolmError("the optimizer chose no run")
        outcome, _ = runner(search.chosen_run, records)
    seconds = time.monotonic() - started
    view, sample_share = llm_view(outcome, compiled.config)
    merged = compiled.policy.apply_all(view, outcome.slm)
    uses_llm = compiled.policy.kind != "slm"
    share = share_of(compiled.config) if uses_llm else 0.0
    dev_scores = {}
    for protocol in ("paper", "strict"):
        evaluator = RelationEvaluator(records, schema, protocol)  # type: ignore[arg-type]
        for name, recs in (("slm", outcome.slm), ("compiled", merged)):
            result = evaluator(recs)
            dev_scores[f"{name}.{protocol}"] = {k: result[k] for k in DEV_SCORE_KEYS}
    corpus = schema.corpus
    retrieval = {
        "pool_split": request.demo_pool if needs_pool else None,
        "pool_sha256": corpus.sha256.get(corpus.splits[request.demo_pool].file)
        if needs_pool and corpus
        else None,
        "embedder": request.embedder,
        "demos": compiled.config.demos,
        "demo_source": compiled.config.demo_source,
        "demo_order": compiled.config.demo_order,
    }
    dev_metrics = {
        "sample": [r.id for r in records],
        "seed": request.seed,
        "llm_sentence_share": share,  # on the whole dev split
        "llm_sentence_share_sample": sample_share if uses_llm else 0.0,
        "scores": dev_scores,
        "policies": [p.to_json() for p in policies],
        "candidates": [c.to_json() for c in search.candidates],
    }
    save_program(
        request.out,
        compiled,
        schema,
        lm={"model": request.lm, "api_base": request.api_base},
        slm_dir=request.slm,
        retrieval=retrieval,
        dev_metrics=dev_metrics,
        extra={"preset": space.name, "llm_calls": search.calls_used, "compile_seconds": round(seconds, 1)},
    )
    return CompileResult(compiled, search, records, dev_scores, share, seconds)


def _cache() -> Path:
    from slcolm_dspy.core.cache import cache_dir

    return cache_dir()
