"""Where Ray's time goes: the Ray engine with a timer in its actor, then the local engine, on the
same documents (SLM program), in one process each after the other.

Prints, per batch, the seconds the actor spent on it and when the driver received it, the actor's
torch threads and OMP_NUM_THREADS, and the two totals. BENCHMARKS.md ("Documents at scale") cites
its numbers; `bench/scale.py` gives the headline ones.

    python bench/ray_batches.py --program CLONE/programs/default-conll04 --slm CLONE/runs/slm-conll04 \\
        --data ../shared/data/conll04
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import program_arguments, write_documents

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.program import ray_engine
from slcolm_dspy.program.apply import RunOptions, extract_document_stream
from slcolm_dspy.program.artifact import load_program

TIMINGS = "SLCOLM_BENCH_TIMINGS"  # where the actor appends its per-batch timings (this machine)


class TimedActor(ray_engine.ProgramActor):
    """The engine's actor, reporting each batch's seconds and the threads torch was given."""

    def __call__(self, rows: dict[str, Any]) -> dict[str, list[Any]]:
        import torch

        started = time.time()
        out = super().__call__(rows)
        timing = {"seconds": round(time.time() - started, 1), "ended": time.time()}
        timing |= {"torch_threads": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")}
        with open(os.environ[TIMINGS], "a", encoding="utf-8") as log:
            log.write(json.dumps(timing) + "\n")
        return out


def main() -> int:
    args = program_arguments(__doc__).parse_args()
    options = RunOptions(slm=args.slm, data=args.data)
    with tempfile.TemporaryDirectory(prefix="slcolm-ray-batches-") as tmp_name:
        tmp = Path(tmp_name)
        write_documents(args, args.sentences // 10, 10, tmp / "docs.jsonl")
        lines = (tmp / "docs.jsonl").read_text(encoding="utf-8").splitlines()
        docs = [Sentence(r["id"], r["text"]) for r in map(json.loads, lines)]
        os.environ[TIMINGS] = str(tmp / "timings.jsonl")  # inherited by Ray's workers
        ray_engine.ProgramActor = TimedActor  # type: ignore[misc]
        received: list[float] = []
        started = time.time()
        ray_engine.extract_document_stream_ray(
            args.program,
            iter(docs),
            tmp / "ray.jsonl",
            options,
            ray_engine.RayOptions(actors=1, num_cpus=2),
            on_document=lambda _: received.append(time.time()),
        )
        ray_seconds = time.time() - started
        timings = (tmp / "timings.jsonl").read_text(encoding="utf-8").splitlines()
        for timing, at in zip(map(json.loads, timings), received, strict=True):
            timing |= {"ended": round(timing["ended"] - started, 1), "received": round(at - started, 1)}
            print(json.dumps(timing))
        compiled = load_program(args.program)
        local_marks: list[float] = []
        started = time.time()
        extract_document_stream(
            compiled,
            iter(docs),
            tmp / "local.jsonl",
            options,
            on_document=lambda _: local_marks.append(time.time()),
        )
        local_seconds = time.time() - started
        gaps = [round(b - a, 1) for a, b in zip([started, *local_marks], local_marks, strict=False)]
        print(json.dumps({"ray_seconds": round(ray_seconds, 1), "local_seconds": round(local_seconds, 1)}))
        print(json.dumps({"local_batch_gaps": gaps}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
