"""Where a Ray run's per-batch time goes: the same batches of documents through the same program
in four settings, each in a fresh process, so that Ray Data, Ray's daemons and the actor process
are told apart.

- `local`: `extract_documents` in this process, as the local engine runs it.
- `local-beside-ray`: the same, with a local Ray started here first (its daemons up, idle).
- `ray-actor`: a plain Ray actor (`ray.remote`, the engine's `--actor-cpus`) given the batches one
  call at a time: Ray core without Ray Data.
- `ray-data`: the engine itself (`extract_document_stream_ray`), a timer in its actor.

Each run prints one JSON line: its setting, the whole run's seconds, the time to its first batch
(start-up), the seconds of each batch (measured where the batch ran), the CPU seconds each kind
of process spent while the batches after the first ran (the process tree sampled every 0.5 s),
and the SLM's torch threads. `--repeats` runs the settings interleaved; the results file ends
with each setting's medians.

    python bench/ray_overhead.py --schema chisre --program programs/default --slm runs/slm \\
        --data ../shared/data/chisre --out bench/results/ray_overhead_chisre.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import CLOCK_TICKS, _tree_sample, cpu_by_process, program_arguments, steal_seconds, write_documents

SETTINGS = ("local", "local-beside-ray", "ray-actor", "ray-data")
TIMINGS = "SLCOLM_BENCH_TIMINGS"  # where a Ray actor appends its per-batch timings (this machine)
BATCH = 64  # documents per batch: the engines' default


def _read_documents(path: Path) -> list[Any]:
    from slcolm_dspy.core.records import Sentence

    return [Sentence(r["id"], r["text"]) for r in map(json.loads, path.read_text("utf-8").splitlines())]


def _batches(documents: list[Any]) -> list[list[Any]]:
    return [documents[i : i + BATCH] for i in range(0, len(documents), BATCH)]


def thread_cpu() -> dict[str, float]:
    """This process's CPU seconds so far, per thread name (threads of one name summed): where
    inside the process the time goes (the SLM's OpenMP threads, Ray's own threads)."""
    totals: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return totals


class BatchTimer:
    """The program, loaded once, timing each batch it runs (in whatever process holds it)."""

    def __init__(self, program: str, options: dict[str, Any], work_root: str) -> None:
        from slcolm_dspy.program.apply import ProgramLM, RunOptions
        from slcolm_dspy.program.artifact import load_program

        self.compiled = load_program(Path(program))
        paths = {key: Path(options[key]) for key in ("slm", "data")}
        self.options = RunOptions(**(options | paths))
        self.work_root = Path(work_root)
        self.lm = ProgramLM(self.compiled, self.options, self.work_root / f"server-{os.getpid()}.log")

    def run(self, documents: list[Any]) -> dict[str, Any]:
        import torch

        from slcolm_dspy.program.apply import batch_dir_name, extract_documents

        began, cpu = time.monotonic(), thread_cpu()  # monotonic: one clock for the machine's processes
        batch_dir = self.work_root / batch_dir_name(documents)
        extract_documents(self.compiled, documents, batch_dir, self.options, client=self.lm.get())
        ended = {"ended": time.monotonic(), "cpu": thread_cpu()}
        return {"began": began, "cpu_before": cpu} | ended | {"threads": torch.get_num_threads()}


def _options(args: Any) -> dict[str, Any]:
    return {"slm": str(args.slm), "data": str(args.data), "device": "cpu"}


def run_setting(setting: str, args: Any, docs: Path, tmp: Path) -> dict[str, Any]:
    """One run of `setting` in this process: when it started and ended, and when each batch did."""
    started = time.monotonic()
    documents = _read_documents(docs)
    work = str(tmp / "work")
    if setting == "ray-data":
        from slcolm_dspy.program import ray_engine
        from slcolm_dspy.program.apply import RunOptions

        os.environ[TIMINGS] = str(tmp / "timings.jsonl")  # inherited by Ray's workers
        ray_engine.ProgramActor = _timed_engine_actor(ray_engine.ProgramActor)  # type: ignore[misc]
        ray_engine.extract_document_stream_ray(
            args.program,
            iter(documents),
            tmp / "ray.jsonl",
            RunOptions(slm=args.slm, data=args.data, device="cpu"),
            ray_engine.RayOptions(actors=1, num_cpus=args.actor_cpus, batch=BATCH),
        )
        timings = [json.loads(line) for line in (tmp / "timings.jsonl").read_text("utf-8").splitlines()]
    else:
        if setting != "local":  # a local Ray as the engine starts one, before the program loads
            from slcolm_dspy.program import ray_engine

            ray = ray_engine._require_ray(local=True)
            ray_engine._start(ray, ray_engine.RayOptions())
        if setting == "ray-actor":
            remote_timer = ray.remote(num_cpus=args.actor_cpus)(BatchTimer)
            actor = remote_timer.remote(str(args.program), _options(args), work)
            timings = [ray.get(actor.run.remote(batch)) for batch in _batches(documents)]
        else:
            timer = BatchTimer(str(args.program), _options(args), work)
            timings = [timer.run(batch) for batch in _batches(documents)]
    return {"setting": setting, "started": started, "ended": time.monotonic(), "batches": timings}


def _timed_engine_actor(base: type) -> type:
    class TimedActor(base):  # type: ignore[misc, valid-type]
        def __call__(self, rows: dict[str, Any]) -> dict[str, list[Any]]:
            import torch

            began, cpu = time.monotonic(), thread_cpu()
            out = super().__call__(rows)
            row = {"began": began, "cpu_before": cpu, "ended": time.monotonic(), "cpu": thread_cpu()}
            row["threads"] = torch.get_num_threads()
            with open(os.environ[TIMINGS], "a", encoding="utf-8") as log:
                log.write(json.dumps(row) + "\n")
            return out

    return TimedActor


def run_child(setting: str, args: Any, docs: Path) -> dict[str, Any]:
    """`setting` in a fresh process, its process tree's CPU sampled every 0.5 s: the run's
    seconds, its batches' seconds, and the CPU seconds each kind of process spent while the
    batches after the first ran (the steady state, start-up and the models' loading left out)."""
    child = [sys.executable, __file__, "--one", setting, "--docs", str(docs)]
    child += ["--program", str(args.program), "--slm", str(args.slm), "--data", str(args.data)]
    child += ["--schema", args.schema, "--actor-cpus", str(args.actor_cpus)]
    samples: list[tuple[float, dict[int, tuple[str, float]]]] = []
    stolen = steal_seconds()
    with subprocess.Popen(child, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        while process.poll() is None:
            cpu: dict[int, tuple[str, float]] = {}
            _tree_sample(process.pid, cpu)
            samples.append((time.monotonic(), cpu))
            time.sleep(0.5)
        stdout, stderr = process.communicate()
    stolen = steal_seconds() - stolen
    if process.returncode != 0:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"{setting} failed: exit {process.returncode}")
    run = json.loads(stdout.strip().splitlines()[-1])
    batches = run["batches"]
    seconds = [b["ended"] - b["began"] for b in batches]
    window = (batches[0]["ended"], batches[-1]["ended"])
    before = next((cpu for t, cpu in reversed(samples) if t <= window[0]), {})
    after: dict[int, tuple[str, float]] = {}  # each process's last sample up to the window's end
    for t, cpu in samples:
        after |= cpu
        if t >= window[1]:
            break
    steady = {pid: (name, s - before.get(pid, (name, 0.0))[1]) for pid, (name, s) in after.items()}
    first, last = batches[1]["cpu_before"] if len(batches) > 1 else {}, batches[-1]["cpu"]
    by_thread = {name: round(s - first.get(name, 0.0), 1) for name, s in last.items()}
    return {
        "setting": setting,
        "seconds": round(run["ended"] - run["started"], 2),
        "to_first_batch": round(batches[0]["began"] - run["started"], 2),
        "batch_seconds": [round(s, 2) for s in seconds],
        "later_batches": round(sum(seconds[1:]), 2),
        "later_batches_cpu_by_process": cpu_by_process(steady),
        "later_batches_cpu_by_thread": dict(sorted(by_thread.items(), key=lambda kv: -kv[1])),
        "torch_threads": batches[0]["threads"],
        "steal_seconds": round(stolen, 1),
    }


def main() -> int:
    parser = program_arguments(__doc__)
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--actor-cpus", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ray_overhead.json"))
    parser.add_argument("--one", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child run: one setting, its JSON line on stdout
        with tempfile.TemporaryDirectory(prefix="slcolm-ray-overhead-") as tmp:
            print(json.dumps(run_setting(args.one, args, args.docs, Path(tmp))), flush=True)
        return 0
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="slcolm-ray-overhead-") as tmp_name:
        docs = Path(tmp_name) / "docs.jsonl"
        write_documents(args, args.sentences // 10, 10, docs)
        for repeat in range(args.repeats):
            for setting in args.settings:
                run = run_child(setting, args, docs) | {"repeat": repeat + 1}
                print(json.dumps(run), flush=True)
                runs.append(run)
    command = "python bench/ray_overhead.py " + " ".join(sys.argv[1:])
    result = {
        "command": command,
        "cores": os.cpu_count(),
        "sentences": args.sentences,
        "batch": BATCH,
        "runs": runs,
        "medians": {
            setting: {
                key: statistics.median(r[key] for r in runs if r["setting"] == setting)
                for key in ("seconds", "to_first_batch", "later_batches")
            }
            for setting in args.settings
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
