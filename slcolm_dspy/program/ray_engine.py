"""The Ray Data engine for document streams: the same compiled program, run by a pool of actors.

The driver reads documents lazily and sends them in waves; each wave is a Ray Dataset whose
`map_batches` runs in an actor pool. Waves are large (`WAVE_BATCHES` batches or `WAVE_CHARS`
characters per actor, whichever comes first) because each starts its actors afresh: an actor
loads the program (SLM, embedder, demonstration pool) once per wave and runs each of its batches
through `extract_documents`: segment, SLM, the LLM for the units the program routes (our retry
layer, `concurrency` requests in flight), merge, stitch. Records come back to the driver in input
order and are written by the same `RecordOutput` as the local engine's, so the output, its resume
and its summary are the same.

Ray is an optional extra: `pip install 'slcolm-dspy[ray]'`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.data.shards import DEFAULT_SHARDS, RecordOutput
from slcolm_dspy.data.writers import dumps
from slcolm_dspy.program.apply import (
    BATCH_CHARS,
    DocumentRun,
    ProgramLM,
    RunOptions,
    StreamSummary,
    batch_dir_name,
    document_batches,
    extract_documents,
    run_usage,
)
from slcolm_dspy.program.artifact import load_program

# Per actor and wave. A wave's text sits in the driver and Ray's object store until it is done,
# and a new wave reloads the program in every actor (seconds): 64 batches of 64 documents is
# minutes to hours of SLM work per actor, so the reload is noise, and 8M characters bounds the
# memory a wave of long documents holds.
WAVE_BATCHES = 64
WAVE_CHARS = 8_000_000


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray pipeline runs."""

    address: str | None = None  # a running cluster (`ray://host:10001` or `auto`); None: start one here
    actors: int = 1
    num_cpus: float = 1.0  # per actor
    num_gpus: float = 0.0  # per actor
    batch: int = 64  # documents per actor call
    batch_chars: int = BATCH_CHARS  # and at most these characters (a longer document goes alone)


# Ray's own bookkeeping that a local run started here never reads (no dashboard, no state API
# queries, no metrics scraper) but that its daemons pay for on the job's cores: per-task event
# reports to the GCS, metrics export and event statistics. Read by Ray's C++ config when it is
# imported and inherited by the daemons `ray.init` spawns; a value already set wins.
QUIET_LOCAL_RAY = {
    "RAY_USAGE_STATS_ENABLED": "0",  # and no usage report sent out
    "RAY_task_events_report_interval_ms": "0",
    "RAY_enable_metrics_collection": "0",
    "RAY_event_stats": "0",
}


def _require_ray(local: bool) -> Any:
    """Ray, imported; for a Ray started here (`local`) with its bookkeeping off first."""
    if local:
        for name, value in QUIET_LOCAL_RAY.items():
            os.environ.setdefault(name, value)
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise SlcolmError("--engine ray needs Ray: pip install 'slcolm-dspy[ray]'") from err
    return ray


class ProgramActor:
    """One Ray actor: the compiled program, loaded once, applied to one batch of documents per
    row (the local engine's batches exactly, so both engines read the same units together)."""

    def __init__(self, program: str, options: dict[str, Any], work_root: str) -> None:
        self.options = RunOptions(**options)
        self.work_root = Path(work_root)
        self.lm: ProgramLM | None = None
        # A user-fixable error (a moved SLM, a bad program) goes back to the driver as a value, so
        # the user reads the one line the local engine prints, not Ray's wrapped traceback.
        self.error = ""
        try:
            self.compiled = load_program(Path(program))
        except SlcolmError as exc:
            self.error = str(exc)
            return
        # kept for the actor's life; a local server stops with the actor, killed or not
        self.lm = ProgramLM(self.compiled, self.options, self.work_root / f"server-{os.getpid()}.log")

    def __del__(self) -> None:
        if self.lm is not None:
            self.lm.close()

    def __call__(self, rows: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"documents": [], "run": [], "usage": [], "batch_dir": [], "error": []}
        for blob in rows["documents"]:
            documents = [Sentence(i, t) for i, t in json.loads(str(blob))]
            batch_dir = self.work_root / batch_dir_name(documents)
            run = DocumentRun([], 0, 0, 0)
            if not self.error and self.lm is not None:
                try:
                    run = extract_documents(
                        self.compiled, documents, batch_dir, self.options, client=self.lm.get()
                    )
                except SlcolmError as exc:
                    self.error = str(exc)
            out["documents"].append(json.dumps([[r.id, dumps(r)] for r in run.records], ensure_ascii=False))
            out["run"].append(json.dumps([run.units, run.windows, run.llm_calls]))
            out["usage"].append(json.dumps(run_usage(batch_dir)))
            out["batch_dir"].append(str(batch_dir))
            out["error"].append(self.error)
        return out


def extract_document_stream_ray(
    program_dir: Path,
    documents: Iterable[Sentence],
    out: Path,
    options: RunOptions,
    ray_options: RayOptions = RayOptions(),
    *,
    shards: int = DEFAULT_SHARDS,
    on_document: Callable[[StreamSummary], None] | None = None,
) -> StreamSummary:
    """`extract_document_stream` on Ray: the same records in the same order, the same resume."""
    ray = _require_ray(local=ray_options.address is None)
    started_here = not ray.is_initialized()
    if started_here:
        _start(ray, ray_options)
    configure_data(ray)
    work_root = out.parent / f"{out.name}.run"
    summary = StreamSummary()
    actor_options = dataclasses.asdict(dataclasses.replace(options, device=actor_device(ray_options)))
    actor_args = (str(program_dir.resolve()), actor_options, str(work_root.resolve()))
    try:
        with RecordOutput(out, shards) as sink:
            batches = document_batches(
                documents, ray_options.batch, sink.done, summary, ray_options.batch_chars
            )
            for wave in _waves(batches, ray_options.actors * WAVE_BATCHES, ray_options.actors * WAVE_CHARS):
                _run_wave(ray, wave, actor_args, ray_options, sink, summary, on_document)
    finally:
        if started_here:
            ray.shutdown()
    shutil.rmtree(work_root, ignore_errors=True)
    return summary


def configure_data(ray: Any) -> None:
    """Ray Data settings every run of this engine uses (they are process-wide)."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # records in input order, as the local engine
    context.enable_progress_bars = False


def _rows(dataset: Any) -> Iterator[dict[str, Any]]:
    """The dataset's rows, each as soon as its block is done. `iter_rows` prefetches: it handed
    over a batch's records only when the actor had finished the next batch (measured), so an
    interruption lost a finished batch and the records came a batch late. Every column the
    actor returns is a JSON string, so each value comes back as a `str`."""
    for block in dataset.iter_batches(batch_size=None, prefetch_batches=0, batch_format="numpy"):
        keys = list(block)
        for values in zip(*(block[key] for key in keys), strict=True):
            yield {key: str(value) for key, value in zip(keys, values, strict=True)}


def actor_device(ray_options: RayOptions) -> str:
    """Where an actor's SLM runs: an actor with a GPU share runs it there (Ray makes that GPU
    the one the actor sees); one without stays on its CPUs even where the node has GPUs that
    other actors hold."""
    return "cuda" if ray_options.num_gpus > 0 else "cpu"


def _start(ray: Any, ray_options: RayOptions) -> None:
    if ray_options.address:
        ray.init(address=ray_options.address, log_to_driver=False)
        return
    # a local Ray on this machine only: loopback, no dashboard, quiet (QUIET_LOCAL_RAY)
    ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")


def _waves(
    batches: Iterator[list[Sentence]], max_batches: int, max_chars: int
) -> Iterator[list[list[Sentence]]]:
    """Consecutive batches, at most `max_batches` and (past the first) `max_chars` characters."""
    wave: list[list[Sentence]] = []
    chars = 0
    for batch in batches:
        size = sum(len(d.text) for d in batch)
        if wave and (len(wave) == max_batches or chars + size > max_chars):
            yield wave
            wave, chars = [], 0
        wave.append(batch)
        chars += size
    if wave:
        yield wave


def _run_wave(
    ray: Any,
    wave: list[list[Sentence]],
    actor_args: tuple[str, dict[str, Any], str],
    ray_options: RayOptions,
    sink: RecordOutput,
    summary: StreamSummary,
    on_document: Callable[[StreamSummary], None] | None,
) -> None:
    items = [{"documents": json.dumps([[d.id, d.text] for d in batch], ensure_ascii=False)} for batch in wave]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ProgramActor,
        fn_constructor_args=actor_args,
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(ray_options.actors, len(items))),
        num_cpus=ray_options.num_cpus,
        num_gpus=ray_options.num_gpus,
    )
    for batch, row in zip(wave, _rows(dataset), strict=True):
        if row["error"]:  # what the actor could not do: said as the local engine says it
            raise SlcolmError(row["error"])
        written = json.loads(row["documents"])
        if [i for i, _ in written] != [d.id for d in batch]:  # order is what resume relies on
            raise SlcolmError("Ray returned batches out of order; nothing of this batch was written")
        for document_id, line in written:
            sink.append_line(document_id, line)
        units, windows, calls = json.loads(row["run"])
        summary.add(batch, DocumentRun([], units, windows, calls), json.loads(row["usage"]))
        shutil.rmtree(row["batch_dir"], ignore_errors=True)  # written: nothing left to resume
        if on_document:
            on_document(summary)
