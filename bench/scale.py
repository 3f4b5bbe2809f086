"""Throughput and memory of `slcolm extract --documents`, local engine and Ray, on the same cores,
and a projection of a 1M-sentence run from the measured rates.

Running text is made from the train split of `--schema`'s corpus (default conll04): documents of
`--sentences-per-document` consecutive sentences (cycled), ids d0, d1, ... Each run is a fresh
process tree (the Ray engine starts its own local Ray); its peak memory is the largest sum of RSS
over the whole tree (driver, Ray's daemons and workers, the local LLM server), sampled every 0.2 s
from /proc, with each process's CPU seconds (by Ray's title or program name: where Ray's cores
go); wall time includes start-up (Ray's too). Both engines must write the same bytes. Two
programs: `--program` as compiled (on CoNLL04 its policy is the SLM alone), and the same program
with its policy set to the LLM's records (`llm`: the local LLM answers the pairs its compiled
routing sends, on `--llm-sentences`). Memory flatness: the local engine at `--flat-counts` documents
of one sentence each.

    python bench/scale.py --program CLONE/programs/default-conll04 --slm CLONE/runs/slm-conll04 \\
        --data ../shared/data/conll04
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split


@functools.cache
def train_sentences(schema_name: str, data: Path) -> tuple[tuple[str, ...], str]:
    """The train split's sentences (any corpus the schema reads) and how running text joins
    them: a space where the language writes one between words, nothing where it does not.
    Read once per run: every document set of a benchmark is cut from the same split."""
    schema = load_schema(schema_name)
    records, _ = load_split(data, "train", schema)
    return tuple(r.text for r in records), " " if schema.spaced else ""


def write_documents(args: argparse.Namespace, documents: int, per_document: int, path: Path) -> int:
    sentences, joiner = train_sentences(args.schema, args.data)
    with path.open("w", encoding="utf-8") as out:
        for i in range(documents):
            at = i * per_document
            text = joiner.join(sentences[(at + k) % len(sentences)] for k in range(per_document))
            out.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return documents * per_document


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests so far, all CPUs summed (/proc/stat): a run
    with much of it ran on a busier host, whatever the engine."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[8]) / CLOCK_TICKS


def _tree_sample(root: int, cpu: dict[int, tuple[str, float]]) -> int:
    """RSS summed over `root` and all its descendants (Ray's workers are grandchildren); each
    process's CPU seconds so far go into `cpu` (pid -> name, seconds), its last sample kept."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    ticks: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        rss[int(entry)] = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS")), 0)
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier += children
    for pid in tree & ticks.keys():
        cpu[pid] = (cpu[pid][0] if pid in cpu else _process_name(pid), ticks[pid])
    return sum(rss.get(p, 0) for p in tree)


def _process_name(pid: int) -> str:
    """What a process is: Ray's title where its cmdline carries one (`ray::IDLE`), else the
    program, with the script for Python ones (on Ray 2.60 here every worker reads as
    `python default_worker.py`; Ray's agents and monitors are Python too)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    argv = [a for a in argv if a]
    if not argv:
        return "?"
    if argv[0].startswith("ray::"):
        return argv[0].split()[0]
    program = Path(argv[0]).name
    if program.startswith("python"):
        script = next((a for a in argv[1:] if not a.startswith("-")), "")
        return f"python {Path(script).name}" if script else program
    return program


def cpu_by_process(cpu: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per kind of process, largest first (processes with the same name summed)."""
    totals: dict[str, float] = {}
    for name, seconds in cpu.values():
        totals[name] = totals.get(name, 0.0) + seconds
    return {name: round(s, 1) for name, s in sorted(totals.items(), key=lambda kv: -kv[1]) if s >= 0.05}


def guided_copy(program: Path, where: Path) -> Path:
    """The compiled program with the LLM's records as its policy (its routing, prompts and LLM
    as compiled): what a run that uses the LLM costs."""
    shutil.copytree(program, where)
    settings = json.loads((where / "settings.json").read_text(encoding="utf-8"))
    settings["policy"] = {"kind": "llm", "rule": "bench/scale.py: the LLM stage measured"}
    (where / "settings.json").write_text(json.dumps(settings, ensure_ascii=False, indent=1), encoding="utf-8")
    return where


SUMMARY = re.compile(r"(\d+) LLM calls, (\d+) prompt /\s*(\d+) completion tokens")


def run_extract(args: argparse.Namespace, docs: Path, out: Path, engine: str, program: Path) -> dict:
    slcolm = Path(sys.executable).parent / "slcolm"
    cmd = [
        str(slcolm),
        "extract",
        "--program",
        str(program),
        str(docs),
        "--out",
        str(out),
        "--documents",
    ]
    cmd += ["--slm", str(args.slm), "--data", str(args.data), "--engine", engine.split("-")[0]]
    if engine.startswith("ray"):
        cmd += ["--actors", "1", "--actor-cpus", str(os.cpu_count())]
    if engine == "ray-cluster":  # a Ray already running on this machine (`ray start --head`)
        cmd += ["--ray-address", "auto"]
    started, stolen = time.monotonic(), steal_seconds()
    env = os.environ | {"COLUMNS": "400"}  # the summary on one line, for SUMMARY
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True, env=env)
        peak, cpu = 0, {}
        while proc.poll() is None:
            peak = max(peak, _tree_sample(proc.pid, cpu))
            time.sleep(0.2)
        seconds, stolen = time.monotonic() - started, steal_seconds() - stolen
        stdout.seek(0), stderr.seek(0)
        printed, errors = stdout.read(), stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"{engine}: exit {proc.returncode}: {errors.strip()[-800:]}")
    found = SUMMARY.search(" ".join(printed.split()))
    calls, prompt, completion = (int(x) for x in found.groups()) if found else (0, 0, 0)
    return {
        "engine": engine,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "llm_calls": calls,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cpu_seconds": round(sum(seconds for _, seconds in cpu.values()), 1),
        "cpu_seconds_by_process": cpu_by_process(cpu),
        "steal_seconds": round(stolen, 1),
    }


def compare_engines(
    args: argparse.Namespace,
    tmp: Path,
    program: Path,
    sentences: int,
    name: str,
    repeats: int = 1,
    engines: tuple[str, str] = ("local", "ray"),
) -> dict:
    """Both engines on the same documents, `repeats` times interleaved (local, ray, local, ...):
    every run, the median per engine, and whether every output is the first local run's bytes.
    Interleaving and medians keep a slow spell of this shared VM from landing on one engine."""
    docs = tmp / f"{name}-docs.jsonl"
    n_docs = sentences // args.sentences_per_document
    write_documents(args, n_docs, args.sentences_per_document, docs)
    rows, identical, reference = [], True, None
    for repeat in range(repeats):
        for engine in engines:
            out = tmp / f"{name}-{engine}-{repeat}.jsonl"
            row = run_extract(args, docs, out, engine, program)
            row |= {"program": name, "run": repeat, "documents": n_docs, "sentences": sentences}
            row["sentences_per_second"] = round(sentences / row["seconds"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
            reference = reference or out.read_bytes()
            identical = identical and out.read_bytes() == reference
    medians = []
    for engine in engines:
        runs = [r for r in rows if r["engine"] == engine]
        medians.append(sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2])
    local, ray = medians
    # each Ray run against the local run just before it, which met the same spell of the host
    pairs = [b["seconds"] / a["seconds"] - 1 for a, b in zip(rows[::2], rows[1::2], strict=True)]
    return {
        "program": name,
        "engines": medians,  # the median run of each
        "runs": rows,
        "identical_output": identical,
        "ray_overhead": round(ray["seconds"] / local["seconds"] - 1, 4),
        "ray_overhead_paired": [round(p, 4) for p in pairs],
        "ray_overhead_paired_median": round(statistics.median(pairs), 4),
    }


def against_cluster(args: argparse.Namespace) -> dict:
    """The SLM-only comparison with Ray already running (started once, as a cluster would be):
    the job's time without Ray's start-up and shut-down; the cluster's daemons still share the
    cores, but their memory is not in the job's process tree."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    start = [ray_cli, "start", "--head", f"--num-cpus={os.cpu_count()}", "--node-ip-address=127.0.0.1"]
    start += ["--include-dashboard=false", "--disable-usage-stats"]
    subprocess.run(start, check=True, capture_output=True)
    try:
        with tempfile.TemporaryDirectory(prefix="slcolm-scale-") as tmp_name:
            tmp, engines = Path(tmp_name), ("local", "ray-cluster")
            sentences, repeats = args.sentences, args.repeats
            return compare_engines(args, tmp, args.program, sentences, "as compiled", repeats, engines)
    finally:
        subprocess.run([ray_cli, "stop", "--force"], check=False, capture_output=True)


def projection(slm_only: dict, guided: dict, sentences: int = 1_000_000) -> dict:
    """A 1M-sentence run on N workers from the measured per-worker (2-core) rates: the SLM stage
    at the SLM-only program's rate, the LLM stage at the guided program's calls per sentence and
    calls per second of one local server (its extra time over the SLM-only run)."""
    slm_rate = slm_only["engines"][0]["sentences_per_second"]
    local_guided = guided["engines"][0]
    calls_per_sentence = local_guided["llm_calls"] / local_guided["sentences"]
    llm_seconds = local_guided["seconds"] - local_guided["sentences"] / slm_rate
    calls_per_second = local_guided["llm_calls"] / llm_seconds if llm_seconds > 0 else float("nan")
    rows = []
    for workers in (1, 8, 64):
        slm_hours = sentences / (slm_rate * workers) / 3600
        llm_hours = sentences * calls_per_sentence / (calls_per_second * workers) / 3600
        rows.append(
            {
                "workers": workers,
                "slm_hours": round(slm_hours, 2),
                "llm_hours": round(llm_hours, 2),
                "dominant": "LLM" if llm_hours > slm_hours else "SLM",
            }
        )
    return {
        "sentences": sentences,
        "slm_sentences_per_second_per_worker": slm_rate,
        "llm_calls_per_sentence": round(calls_per_sentence, 4),
        "llm_calls_per_second_per_server": round(calls_per_second, 3),
        "llm_calls": round(sentences * calls_per_sentence),
        "rows": rows,
    }


def result_header() -> dict:
    """What every results file starts with: the command that made it and the cores it ran on."""
    return {"command": "python bench/scale.py " + " ".join(sys.argv[1:]), "cores": os.cpu_count()}


def program_arguments(description: str | None) -> argparse.ArgumentParser:
    """The arguments every scale benchmark takes: the compiled program, its SLM, the corpus."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--program", type=Path, required=True)
    parser.add_argument("--slm", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--schema", default="conll04", help="documents come from its train split")
    parser.add_argument("--sentences", type=int, default=5000)
    return parser


def main() -> int:
    parser = program_arguments(__doc__)
    parser.add_argument("--sentences-per-document", type=int, default=10)
    parser.add_argument("--flat-counts", type=int, nargs=2, default=[1000, 20000])
    parser.add_argument("--out", type=Path, default=Path("bench/results/scale.json"))
    parser.add_argument("--llm-sentences", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine of the SLM-only program")
    parser.add_argument(
        "--against-cluster",
        action="store_true",
        help="only the SLM-only comparison, Ray started beforehand (--out defaults to scale_cluster.json)",
    )
    parser.add_argument(
        "--engines-only",
        action="store_true",
        help="only the SLM-only comparison, Ray started by each run (--out defaults to scale_engines.json)",
    )
    args = parser.parse_args()
    if args.against_cluster or args.engines_only:
        name = "scale_cluster.json" if args.against_cluster else "scale_engines.json"
        out = args.out if args.out != parser.get_default("out") else args.out.with_name(name)
        result = result_header()
        if args.against_cluster:
            result |= against_cluster(args)
        else:
            with tempfile.TemporaryDirectory(prefix="slcolm-scale-") as tmp_name:
                result |= compare_engines(
                    args, Path(tmp_name), args.program, args.sentences, "as compiled", args.repeats
                )
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(json.dumps(result, indent=1))
        return 0
    # Written after every part (`"complete": false` until the last): a run cut short keeps what
    # it measured.
    result = result_header()
    result |= {"complete": False, "programs": [], "flat_memory": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    with tempfile.TemporaryDirectory(prefix="slcolm-scale-") as tmp_name:
        tmp = Path(tmp_name)
        slm_only = compare_engines(args, tmp, args.program, args.sentences, "as compiled", args.repeats)
        result["programs"].append(slm_only)
        save()
        guided_program = guided_copy(args.program, tmp / "guided-program")
        guided = compare_engines(args, tmp, guided_program, args.llm_sentences, "llm")
        result["programs"].append(guided)
        result["projection"] = projection(slm_only, guided)
        save()
        flat = result["flat_memory"]
        for count in args.flat_counts:
            one_each = tmp / f"flat{count}.jsonl"
            write_documents(args, count, 1, one_each)
            row = run_extract(args, one_each, tmp / f"flat-out{count}.jsonl", "local", args.program)
            flat.append(row | {"documents": count})
            print(json.dumps(flat[-1]), flush=True)
            save()
    result["rss_growth"] = round(flat[1]["peak_rss_mb"] / flat[0]["peak_rss_mb"] - 1, 4)
    result["complete"] = True
    save()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
