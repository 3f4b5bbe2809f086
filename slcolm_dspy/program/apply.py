"""Applying a compiled program: the guide it runs with, and extraction over records or text.

`extract` is the one-call façade (`slcolm_dspy.extract`); `slcolm extract` and `slcolm evaluate
--program` use the pieces below it.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.data.corpus import load_split, resolve_data_dir
from slcolm_dspy.data.io import sha256_of
from slcolm_dspy.data.segment import segment, stitch
from slcolm_dspy.data.shards import DEFAULT_SHARDS, RecordOutput
from slcolm_dspy.data.text import split_sentences
from slcolm_dspy.guide.backends import DEFAULT_MAX_TOKENS, LMSpec, open_lm
from slcolm_dspy.guide.journal import RunJournal
from slcolm_dspy.guide.pipeline import Guide
from slcolm_dspy.program.artifact import CompiledProgram, load_program
from slcolm_dspy.program.outcome import GuideOutcome
from slcolm_dspy.program.runner import is_complete, run_program


def guide_for(
    compiled: CompiledProgram, slm: Path | None = None, data: Path | None = None, device: str = "auto"
) -> Guide:
    """The guide a compiled program runs with: its SLM (hash checked) on `device`, its embedder
    and its demonstration pool (checksum checked). Built once per program, SLM, data directory
    and device."""
    key = (slm, data, device)
    if key not in compiled.guides:
        compiled.guides[key] = _build_guide(compiled, slm, data, device)
    return compiled.guides[key]


def _build_guide(compiled: CompiledProgram, slm: Path | None, data: Path | None, device: str) -> Guide:
    config = compiled.program.config
    retrieval = compiled.retrieval
    pool: list[Sentence] = []
    if config.demos and retrieval.get("pool_split"):
        data_dir = resolve_data_dir(data)
        split = retrieval["pool_split"]
        pool = load_split(data_dir, split, compiled.schema)[0]
        expected = retrieval.get("pool_sha256")
        corpus = compiled.schema.corpus
        if expected and corpus is not None and sha256_of(data_dir / corpus.splits[split].file) != expected:
            raise SlcolmError(
                f"the demonstration pool ({split} in {data_dir}) differs from the one compiled with"
            )
    embedder = retrieval.get("embedder", "e5")
    return Guide.from_files(compiled.schema, compiled.slm_dir(slm), embedder, pool, config, device)


@dataclass(frozen=True)
class RunOptions:
    """How to run a compiled program: another LLM than it was compiled with (and its server), the
    SLM if it moved, the corpus (for the demonstration pool), parallel requests, reply length."""

    lm: str | None = None
    api_base: str | None = None
    slm: Path | None = None
    data: Path | None = None
    concurrency: int = 1
    max_tokens: int = DEFAULT_MAX_TOKENS
    device: str = "auto"  # where the SLM runs: cpu, cuda[:N], or auto (a GPU where one is visible)


DEFAULT_OPTIONS = RunOptions()


def lm_for(compiled: CompiledProgram, lm: str | None, api_base: str | None) -> tuple[str, str | None]:
    """The LLM to run: the one given, else the one the program was compiled with."""
    if lm:
        return lm, api_base
    return compiled.manifest["lm"]["model"], api_base or compiled.manifest["lm"].get("api_base")


def run_guided(
    compiled: CompiledProgram,
    inputs: Sequence[Sentence],
    run_dir: Path,
    options: RunOptions = DEFAULT_OPTIONS,
    *,
    settings: dict[str, Any] | None = None,
    on_done: Callable[[int, int], None] | None = None,
    client: Any = None,
) -> tuple[GuideOutcome, int]:
    """The program's guide run over `inputs` in `run_dir` and its new LLM calls. A finished run is
    only read back: no SLM, embedder or LLM server is started for it. `client`: an LLM already
    open (a stream keeps one for all its batches); else one is opened for this run."""
    if is_complete(run_dir, inputs):
        return GuideOutcome.read(run_dir, inputs, compiled.schema), 0
    guide = guide_for(compiled, options.slm, options.data, options.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(open_program_lm(compiled, options, run_dir / "server.log"))
        return run_program(
            compiled.program,
            guide,
            inputs,
            client,
            run_dir,
            concurrency=options.concurrency,
            settings=settings,
            on_done=on_done,
        )


def open_program_lm(
    compiled: CompiledProgram, options: RunOptions, log: Path
) -> contextlib.AbstractContextManager[Any]:
    """The LLM a run of the program talks to, open (a local server running) until the block ends."""
    from slcolm_dspy.core.cache import cache_dir

    model, base = lm_for(compiled, options.lm, options.api_base)
    spec = LMSpec(model, api_base=base, max_tokens=options.max_tokens)
    log.parent.mkdir(parents=True, exist_ok=True)
    return open_lm(spec, cache_dir(), parallel=options.concurrency, log=log)


class ProgramLM:
    """A stream's LLM, opened at the first batch that needs it (never for a program whose policy
    is the SLM alone) and kept open until `close`: a local server loads its model once per
    stream, or once per Ray actor."""

    def __init__(self, compiled: CompiledProgram, options: RunOptions, log: Path) -> None:
        self.compiled, self.options, self.log = compiled, options, log
        self._stack = contextlib.ExitStack()
        self._client: Any = None

    def get(self) -> Any:
        """The open LLM, or None when the program needs none."""
        if self._client is None and self.compiled.policy.kind != "slm":
            self._client = self._stack.enter_context(open_program_lm(self.compiled, self.options, self.log))
        return self._client

    def close(self) -> None:
        self._stack.close()
        self._client = None

    def __enter__(self) -> ProgramLM:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def extract_records(
    compiled: CompiledProgram,
    records: Sequence[Sentence],
    work_dir: Path,
    options: RunOptions = DEFAULT_OPTIONS,
    *,
    on_done: Callable[[int, int], None] | None = None,
    client: Any = None,
) -> tuple[list[Sentence], int]:
    """The program's merged records for `records` (text only is used) and the new LLM calls.

    A program whose policy is the SLM alone makes no LLM call. The guide's work is kept in
    `work_dir`: an interrupted extraction resumes there, a finished one is only read back.
    """
    inputs = [r.with_predictions((), ()) for r in records]
    if compiled.policy.kind == "slm":
        return guide_for(compiled, options.slm, options.data, options.device).slm.predict(inputs), 0
    outcome, calls = run_guided(compiled, inputs, work_dir, options, on_done=on_done, client=client)
    return compiled.policy.apply_all(outcome.llm, outcome.slm), calls


@dataclass
class DocumentRun:
    """What `extract_documents` made: one record per document, and how the documents were cut."""

    records: list[Sentence]
    units: int  # pieces the models read
    windows: int  # of which cut by length (stretches without sentence punctuation)
    llm_calls: int


def extract_documents(
    compiled: CompiledProgram,
    documents: Sequence[Sentence],
    work_dir: Path,
    options: RunOptions = DEFAULT_OPTIONS,
    *,
    max_chars: int = 400,
    overlap: int = 100,
    on_done: Callable[[int, int], None] | None = None,
    client: Any = None,
) -> DocumentRun:
    """The program over documents of any length: each is cut into units (`data.segment`), the
    units run as sentences (resumable in `work_dir`, keyed by unit id), and their records are
    stitched back into one record per document with offsets into the document."""
    segmentations = [segment(d, max_chars=max_chars, overlap=overlap) for d in documents]
    units = [u.record() for s in segmentations for u in s.units]
    merged, calls = (
        extract_records(compiled, units, work_dir, options, on_done=on_done, client=client)
        if units
        else ([], 0)
    )
    by_id = {r.id: r for r in merged}
    records = [stitch(s, [by_id[u.id] for u in s.units]) for s in segmentations]
    return DocumentRun(records, len(units), sum(s.windows for s in segmentations), calls)


# A batch of documents is the unit of memory and of resume: its units are read together and its
# records written when all are done. 64 short documents are ~20k-80k characters (the scale
# benchmarks' batches, unchanged); 64 chapters of a history would be millions, minutes to hours
# of work lost to an interruption and gigabytes held, so a batch also stops at 200k characters
# (~2 minutes of SLM work on 2 cores for unpunctuated text).
BATCH_CHARS = 200_000


@dataclass
class StreamSummary:
    documents: int = 0  # written by this run
    resumed: int = 0  # already in the output: skipped
    characters: int = 0
    units: int = 0
    windows: int = 0
    llm_calls: int = 0  # new (uncached) calls of this run
    prompt_tokens: int = 0  # of the batches this run finished (a resumed batch's earlier part too)
    completion_tokens: int = 0
    cost: float = 0.0  # USD as LiteLLM prices the model; 0 for a local server or an unpriced model
    llm_sentences: int = 0  # units the LLM answered
    failed: int = 0  # units whose LLM calls kept failing (the SLM's record stands for them)
    failures: Counter[str] = field(default_factory=Counter)  # failed units by cause

    def add(self, documents: Sequence[Sentence], run: DocumentRun, usage: dict[str, Any]) -> None:
        self.documents += len(documents)
        self.characters += sum(len(d.text) for d in documents)
        self.units += run.units
        self.windows += run.windows
        self.llm_calls += run.llm_calls
        self.prompt_tokens += int(usage.get("prompt_tokens", 0))
        self.completion_tokens += int(usage.get("completion_tokens", 0))
        self.cost += float(usage.get("cost", 0.0))
        self.llm_sentences += int(usage.get("llm_sentences", 0))
        self.failed += int(usage.get("failed", 0))
        self.failures.update(usage.get("failures", {}))


def extract_document_stream(
    compiled: CompiledProgram,
    documents: Iterable[Sentence],
    out: Path,
    options: RunOptions = DEFAULT_OPTIONS,
    *,
    batch: int = 64,
    batch_chars: int = BATCH_CHARS,
    shards: int = DEFAULT_SHARDS,
    on_document: Callable[[StreamSummary], None] | None = None,
) -> StreamSummary:
    """Documents read one batch at a time (`batch` documents, at most `batch_chars` characters
    unless one document is longer), each document's record appended to `out` (a `.jsonl`
    file, else a folder of `shards` files keyed by document id) as its batch finishes: memory
    holds one batch, and a rerun skips the documents already written (a torn last line is redone),
    so none is lost or written twice.

    Each batch's guide work lives in its own folder under `OUT.run/` (named by its documents, so
    an interrupted batch resumes there) and is removed once its records are written: the work
    stays the size of one batch. The LLM is opened once, at the first batch that needs it."""
    work_root = out.parent / f"{out.name}.run"
    summary = StreamSummary()
    with RecordOutput(out, shards) as sink, ProgramLM(compiled, options, work_root / "server.log") as lm:
        for chunk in document_batches(documents, batch, sink.done, summary, batch_chars):
            batch_dir = work_root / batch_dir_name(chunk)
            run = extract_documents(compiled, chunk, batch_dir, options, client=lm.get())
            for record in run.records:
                sink.append(record)
            summary.add(chunk, run, run_usage(batch_dir))
            shutil.rmtree(batch_dir, ignore_errors=True)
            if on_document:
                on_document(summary)
    shutil.rmtree(work_root, ignore_errors=True)  # every batch is written: nothing to resume
    return summary


def batch_dir_name(documents: Sequence[Sentence]) -> str:
    """A batch's work folder, named by its documents' ids: the same batch, after an interruption,
    finds its journal again (both engines cut the same batches)."""
    digest = hashlib.sha256("\n".join(d.id for d in documents).encode("utf-8")).hexdigest()[:16]
    return f"batch-{digest}"


def run_usage(run_dir: Path) -> dict[str, Any]:
    """A guide run's token and cost totals over every invocation on its directory (none for the
    SLM)."""
    return RunJournal(run_dir).totals()


def document_batches(
    documents: Iterable[Sentence],
    size: int,
    done: set[str],
    summary: StreamSummary,
    max_chars: int = BATCH_CHARS,
) -> Iterator[list[Sentence]]:
    """The documents not yet `done`, `size` at a time and at most `max_chars` characters (a
    longer document goes alone), skipped ones counted as resumed; an id seen twice is an error,
    since resume and shards key on ids."""
    chunk: list[Sentence] = []
    chars = 0
    seen: set[str] = set()
    for document in documents:
        if document.id in seen:
            raise SlcolmError(f"document id {document.id!r} appears twice; ids must be unique")
        seen.add(document.id)
        if document.id in done:
            summary.resumed += 1
            continue
        if chunk and chars + len(document.text) > max_chars:
            yield chunk
            chunk, chars = [], 0
        chunk.append(document)
        chars += len(document.text)
        if len(chunk) == size:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


def extract(
    texts: str | Sequence[str],
    program: str | Path = "programs/default",
    *,
    lm: str | None = None,
    api_base: str | None = None,
    work_dir: str | Path | None = None,
    documents: bool = False,
) -> list[Sentence]:
    """Relations from raw text with a compiled program, in one call.

    Each text is split into sentences (after 。！？; a sentence longer than a unit, such as a
    stretch of unpunctuated text, is read in overlapping windows and stitched back); the records
    returned carry entities with character offsets into their sentence and typed relations
    between them. With `documents`, each text is one document of any length (cut into
    overlapping windows where it has no punctuation) and comes back as one record with offsets
    into the whole text. `lm` overrides the LLM the program was compiled with; `work_dir` keeps
    the work so a rerun resumes.
    """
    compiled = load_program(Path(program))
    items = [texts] if isinstance(texts, str) else list(texts)
    options = RunOptions(lm=lm, api_base=api_base)
    if documents:
        docs = [Sentence(f"text{i}", text) for i, text in enumerate(items)]
        with _work(work_dir) as where:
            return extract_documents(compiled, docs, where, options).records
    records = [
        Sentence(f"text{i}:{n}", sentence)
        for i, text in enumerate(items)
        for n, (_, sentence) in enumerate(split_sentences(text), start=1)
    ]
    with _work(work_dir) as where:
        return extract_documents(compiled, records, where, options).records


@contextlib.contextmanager
def _work(work_dir: str | Path | None) -> Iterator[Path]:
    """The given work directory (kept: a rerun resumes), else a temporary one."""
    if work_dir is not None:
        yield Path(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix="slcolm-extract-") as tmp:
        yield Path(tmp)
