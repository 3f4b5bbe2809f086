"""Run the guide stage over records: SLM hints, candidate definitions, retrieved demonstrations,
an LLM call per sentence (or per uncertain pair), grounded outputs appended as they arrive.

A run directory holds `predictions.jsonl` (one record per sentence, with a `guide` key of
metadata that readers ignore), `slm.jsonl` (the SLM's predictions for the same sentences),
`dspy_cache/` and `run.json` (settings, counts, tokens, timing). A rerun resumes: sentences
already in `predictions.jsonl` are skipped, so none is lost or duplicated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy
import numpy as np

from slcolm_dspy.core.cache import cache_dir
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.guide import render
from slcolm_dspy.guide.adapter import CompactJSONAdapter
from slcolm_dspy.guide.candidates import CandidateSelector
from slcolm_dspy.guide.choice import PairTopTwo, top_two
from slcolm_dspy.guide.demos import Demo, DemoRetriever
from slcolm_dspy.guide.embed import Embedder, cached_passages, make_embedder
from slcolm_dspy.guide.faults import (
    Interrupted,
    LLMStopped,
    RetryPolicy,
    describe,
    judge,
    stop_message,
    wait,
)
from slcolm_dspy.guide.grounding import Grounder, GroundingStats
from slcolm_dspy.guide.journal import RunJournal
from slcolm_dspy.guide.modules import GuidedExtraction, RelationChoice
from slcolm_dspy.guide.settings import GuideConfig, ModuleName, Prepared, RunSummary
from slcolm_dspy.guide.strategies import GuideStrategy, strategy_for

if TYPE_CHECKING:  # torch comes with the SLM, loaded where a guide runs: a Ray driver never imports it
    from slcolm_dspy.slm.extractor import SpanExtractor

DEFAULT_RETRY = RetryPolicy()


def make_adapter(name: str, schema: Schema) -> Any:
    if name == "compact":
        return CompactJSONAdapter(schema.prompts)
    if name == "json":
        return dspy.JSONAdapter()
    if name == "chat":
        return dspy.ChatAdapter()
    raise SlcolmError(f"unknown adapter {name!r}; choose compact, json or chat")


class Guide:
    def __init__(
        self,
        schema: Schema,
        slm: SpanExtractor,
        embedder: Embedder,
        pool: Sequence[Sentence],
        config: GuideConfig,
        cache: Path | None = None,
    ) -> None:
        self.schema = schema
        self.slm = slm
        self.embedder = embedder
        self.config = config
        self.selector = CandidateSelector(schema, embedder, config.top_m, config.max_definitions)
        self.grounder = Grounder(schema)
        self.text_form = render.text_form(schema)
        self._pool = list(pool)
        self._pool_slm: list[Sentence] | None = None
        self._cache = cache
        self._retrievers: dict[str, DemoRetriever] = {}  # by demonstration source
        self.extraction = GuidedExtraction(schema)
        self.choice = RelationChoice(schema, config.rotations)
        self._configure_modules()

    @classmethod
    def from_files(
        cls,
        schema: Schema,
        slm_dir: Path,
        embedder: str,
        pool: Sequence[Sentence],
        config: GuideConfig,
        device: str = "auto",
    ) -> Guide:
        """A guide with the SLM loaded from `slm_dir` onto `device` and the embedder named by
        `embedder` (e5 or a sentence-transformers directory); passage vectors cached under
        $SLCOLM_CACHE."""
        from slcolm_dspy.slm.extractor import SpanExtractor

        extractor = SpanExtractor.load(slm_dir, device=device)
        return cls(schema, extractor, make_embedder(embedder), pool, config, cache=cache_dir() / "embeddings")

    def _configure_modules(self) -> None:
        """Settings the modules read at call time: rotations, and JSON mode for extraction (the
        compact adapter asks for one JSON object, so the backend may constrain decoding to it)."""
        self.choice.rotations = self.config.rotations
        json_mode = self.config.json_mode and self.config.adapter == "compact"
        self.extraction_lm_config = {"response_format": {"type": "json_object"}} if json_mode else {}

    @property
    def retriever(self) -> DemoRetriever | None:
        """Built on first use: predicting and embedding the pool costs a minute on a large pool,
        and a run that needs no demonstrations (choice, a resumed run) should not pay it."""
        if not self.config.demos or not self._pool:
            return None
        source = self.config.demo_source
        if source not in self._retrievers:
            if self._pool_slm is None:
                self._pool_slm = self.slm.predict(self._pool)
            demos = [Demo(g, s) for g, s in zip(self._pool, self._pool_slm, strict=True)]
            vectors = self._vectors([d.gold for d in demos], passages=True, cache=self._cache)
            self._retrievers[source] = DemoRetriever(demos, vectors)
        return self._retrievers[source]

    def reconfigure(self, config: GuideConfig) -> None:
        """Run with other settings; the SLM, embedder, pool and built indexes are kept."""
        if (config.top_m, config.max_definitions) != (self.config.top_m, self.config.max_definitions):
            self.selector = CandidateSelector(
                self.schema, self.embedder, config.top_m, config.max_definitions
            )
        self.config = config
        self._configure_modules()

    def _vectors(
        self, records: Sequence[Sentence], *, passages: bool, cache: Path | None = None
    ) -> np.ndarray:
        if self.config.demo_source == "slm":  # GPT-RE style: the task model's own representation
            return self.slm.representations(records).sentences
        texts = [r.form(self.text_form) for r in records]
        if passages:
            return cached_passages(self.embedder, texts, cache)
        return self.embedder.queries(texts)

    def prepare(
        self, records: Sequence[Sentence], *, batch_with: Sequence[Sentence] | None = None
    ) -> list[Prepared]:
        """Each record's SLM hints, definitions and demonstrations, ready to ask the LLM.

        `batch_with` (the whole run, of which `records` are the part still to do): all of it is
        prepared, so every sentence shares the batches it had in the uninterrupted run. The SLM's
        and the embedder's low-precision kernels shift a borderline probability or similarity with
        the padding a batch brings; a shifted hint or definition is a different prompt, and a
        resumed run would pay again for an answer its cache already holds."""
        if batch_with is not None:
            whole = {p.record.id: p for p in self.prepare(batch_with)}
            return [whole[r.id] for r in records]
        predicted = self.slm.predict_with_pair_scores(records)
        slm_records = [p for p, _ in predicted]
        definitions = self.selector.select_all(records, slm_records)
        if self.strategy.wants_demos and records and self.retriever is not None:
            demos = self.retriever.retrieve(
                records, self._vectors(records, passages=False), self.config.demos, self.config.demo_order
            )
        else:
            demos = [[] for _ in records]
        return [
            Prepared(r, s, scores, d, m)
            for r, (s, scores), d, m in zip(records, predicted, definitions, demos, strict=True)
        ]

    @property
    def strategy(self) -> GuideStrategy:
        """What the configured module does (extraction or multiple choice)."""
        return strategy_for(self.config)

    def answer(self, item: Prepared, lm: Any) -> tuple[Sentence, dict[str, Any]]:
        """One prepared sentence through the configured module: its record and metadata."""
        return self.strategy.answer(self, item, lm)


def is_cache_hit(entry: dict[str, Any]) -> bool:
    """Whether a `dspy.LM` history entry was answered from DSPy's cache. DSPy 3.4.1 marks the
    response object (`response.cache_hit`), not the entry, and a hit keeps the cost recorded when
    the answer was first bought, so counting entries alone counts cached answers as paid calls."""
    return bool(entry.get("cache_hit") or getattr(entry.get("response"), "cache_hit", False))


def run_guide(
    guide: Guide,
    records: Sequence[Sentence],
    lm: Any,
    run_dir: Path,
    *,
    concurrency: int = 1,
    retry: RetryPolicy = DEFAULT_RETRY,
    settings: dict[str, Any] | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the guide's module (its strategy) over `records`, journalled in `run_dir` (RunJournal).

    `concurrency` and `retry` are run settings (how hard to push this backend), not part of the
    program. A sentence whose calls keep failing keeps the SLM's record, marked failed; a refused
    key stops the run (LLMStopped); Ctrl-C stops it within a moment (Interrupted). Either way what
    was written stays, and a rerun goes on from there.
    """
    journal = RunJournal(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dspy.configure_cache(enable_disk_cache=True, disk_cache_dir=str(run_dir / "dspy_cache"))
    done = journal.resume()
    todo = [r for r in records if r.id not in done]
    summary = RunSummary(resumed=len(done))
    history_start = len(lm.history)
    started = time.monotonic()
    prepared = guide.prepare(todo, batch_with=records if done and todo else None)
    _write_slm_records(guide, journal, records, prepared)
    asking = _Asking(guide, lm, make_adapter(guide.config.adapter, guide.schema), retry, summary)
    asking.run(prepared, journal, concurrency, on_done)
    summary.seconds = time.monotonic() - started
    _count_calls(summary, lm.history[history_start:])
    result = {"settings": settings or {}, "config": asdict(guide.config), **summary.as_dict()}
    result["prompt_chars_sum"] = sum(summary.prompt_chars)
    result["prompt_chars_n"] = len(summary.prompt_chars)
    result = journal.with_totals(result, summary.failures)
    journal.write_summary(result)
    return result


def _write_slm_records(
    guide: Guide, journal: RunJournal, records: Sequence[Sentence], prepared: Sequence[Prepared]
) -> None:
    """The SLM's own record for every sentence, for merging and scoring beside the LLM's: those
    just prepared, plus (on a resumed run) the sentences written before, read back as stored.
    Predicting those again is not safe: the SLM's low-precision kernels can shift a borderline
    entity with the batch a sentence shares, and the stored answers index the entities of the
    record they were asked about."""
    slm_by_id = {p.record.id: p.slm for p in prepared}
    stored = journal.read_slm(guide.schema)
    earlier = [r for r in records if r.id not in slm_by_id]
    slm_by_id.update({r.id: stored[r.id] for r in earlier if r.id in stored})
    missing = [r for r in earlier if r.id not in slm_by_id]
    slm_by_id.update(zip((r.id for r in missing), guide.slm.predict(missing), strict=True))
    journal.write_slm(slm_by_id[r.id] for r in records)


class _Asking:
    """The LLM asked about prepared sentences, `concurrency` at a time, each answer journalled
    as it arrives (in input order) and counted in `summary`."""

    def __init__(self, guide: Guide, lm: Any, adapter: Any, retry: RetryPolicy, summary: RunSummary) -> None:
        self.guide, self.lm, self.adapter, self.retry, self.summary = guide, lm, adapter, retry, summary
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(
        self,
        prepared: Sequence[Prepared],
        journal: RunJournal,
        concurrency: int,
        on_done: Callable[[int, int], None] | None,
    ) -> None:
        pool = ThreadPoolExecutor(max(1, concurrency))
        try:
            with journal.predictions.open("a", encoding="utf-8") as sink:
                futures = [pool.submit(self.answer, item) for item in prepared]
                for item, future in zip(prepared, futures, strict=True):
                    # short waits, not one blocking wait: Ctrl-C is acted on within half a second
                    while not future.done():
                        wait_for([future], timeout=0.5)
                    self.write(sink, item, *future.result())
                    if on_done:
                        on_done(self.summary.sentences, len(prepared))
        except (KeyboardInterrupt, Interrupted):
            self.stop.set()
            raise Interrupted(
                f"interrupted after {self.summary.sentences} of {len(prepared)} sentences; run the same"
                f" command again to resume ({journal.predictions} keeps what was written)"
            ) from None
        except LLMStopped:
            self.stop.set()
            raise
        finally:
            # never wait for calls still in flight: a hung request must not hold Ctrl-C hostage
            pool.shutdown(wait=not self.stop.is_set(), cancel_futures=True)

    def answer(self, item: Prepared) -> tuple[Sentence, dict[str, Any]]:
        """One sentence's answer, retried as `judge` says; a sentence given up keeps its SLM record."""
        retry = self.retry
        for attempt in range(retry.retries + 1):
            if self.stop.is_set():
                raise Interrupted("interrupted")
            try:
                with dspy.context(lm=self.lm, adapter=self.adapter):
                    return self.guide.answer(item, self.lm)
            except (Interrupted, LLMStopped):
                raise
            except Exception as exc:
                verdict = judge(exc)
                if verdict == "raise":
                    raise
                if verdict == "stop":
                    self.stop.set()
                    raise LLMStopped(stop_message(exc)) from None
                if verdict == "give_up" or attempt == retry.retries:
                    return item.slm, {"llm": False, "failed": describe(exc), "attempts": attempt + 1}
                wait(retry.delay(attempt, exc), self.stop)
        raise AssertionError("unreachable")

    def write(self, sink: Any, item: Prepared, record: Sentence, meta: dict[str, Any]) -> None:
        summary = self.summary
        if meta.get("failed"):
            summary.failed += 1
            summary.failures[meta["failed"]] += 1
        else:
            self.guide.strategy.account(summary, self.guide, item, meta, self.adapter)
        summary.llm_sentences += int(meta.get("llm", True))
        # every pair's two best SLM probabilities: narrower routing bands can be replayed offline
        meta["pairs"] = [
            PairTopTwo(p.head, p.tail, *top_two(p.probabilities)).to_json() for p in item.pair_scores
        ]
        with self.lock:
            sink.write(RunJournal.line(record, meta))
            sink.flush()
            summary.sentences += 1


def _count_calls(summary: RunSummary, history: Sequence[dict[str, Any]]) -> None:
    """Calls, tokens and cost from the LM's history of this run (cached answers cost nothing)."""
    for entry in history:
        summary.llm_calls += 1
        if is_cache_hit(entry):  # no request was sent: no tokens, no cost
            summary.cached_calls += 1
            continue
        usage = entry.get("usage") or {}
        summary.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        summary.completion_tokens += int(usage.get("completion_tokens") or 0)
        summary.cost += float(entry.get("cost") or 0.0)


__all__ = [
    "GroundingStats",
    "Guide",
    "GuideConfig",
    "ModuleName",
    "Prepared",
    "RunSummary",
    "run_guide",
]
