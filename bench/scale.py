"""Throughput and memory of `slcolm extract --documents`, local engine and Ray, on the same cores,
and a projection of a 1M-sentence run from the measured rates.

Running text is made from a SpERT train split: documents of `--sentences-per-document` consecutive
sentences (cycled), ids d0, d1, ... Each run is a fresh process tree (the Ray engine starts its own
local Ray); its peak memory is the largest sum of RSS over the whole tree (driver, Ray's daemons
and workers), sampled every 0.2 s from /proc; wall time includes start-up (Ray's too). Both
engines must write the same bytes. Memory flatness: the local engine at `--flat-counts`
documents of one sentence each.

    python bench/scale.py --program CLONE/programs/default-conll04 --slm CLONE/runs/slm-conll04 \\
        --data ../shared/data/conll04
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_documents(spert: Path, documents: int, per_document: int, path: Path) -> int:
    sentences = [" ".join(s["tokens"]) for s in json.loads(spert.read_text(encoding="utf-8"))]
    with path.open("w", encoding="utf-8") as out:
        for i in range(documents):
            at = i * per_document
            text = " ".join(sentences[(at + k) % len(sentences)] for k in range(per_document))
            out.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return documents * per_document


def _tree_rss_kb(root: int) -> int:
    """RSS summed over `root` and all its descendants (Ray's workers are grandchildren)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        rss[int(entry)] = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS")), 0)
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier += children
    return sum(rss.get(p, 0) for p in tree)


def run_extract(args: argparse.Namespace, docs: Path, out: Path, engine: str) -> dict:
    slcolm = Path(sys.executable).parent / "slcolm"
    cmd = [
        str(slcolm),
        "extract",
        "--program",
        str(args.program),
        str(docs),
        "--out",
        str(out),
        "--documents",
    ]
    cmd += ["--slm", str(args.slm), "--data", str(args.data), "--engine", engine]
    if engine == "ray":
        cmd += ["--actors", "1", "--actor-cpus", str(os.cpu_count())]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kb(proc.pid))
        time.sleep(0.2)
    seconds = time.monotonic() - started
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{engine}: exit {proc.returncode}: {stderr.strip()[-800:]}")
    return {"engine": engine, "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--program", type=Path, required=True)
    parser.add_argument("--slm", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--train-file", default="conll04_train.json")
    parser.add_argument("--sentences", type=int, default=5000)
    parser.add_argument("--sentences-per-document", type=int, default=10)
    parser.add_argument("--flat-counts", type=int, nargs=2, default=[1000, 20000])
    parser.add_argument("--out", type=Path, default=Path("bench/results/scale.json"))
    args = parser.parse_args()
    spert = args.data / args.train_file
    rows, flat = [], []
    with tempfile.TemporaryDirectory(prefix="slcolm-scale-") as tmp:
        docs = Path(tmp) / "docs.jsonl"
        n_docs = args.sentences // args.sentences_per_document
        write_documents(spert, n_docs, args.sentences_per_document, docs)
        outputs = {}
        for engine in ("local", "ray"):
            outputs[engine] = Path(tmp) / f"{engine}.jsonl"
            row = run_extract(args, docs, outputs[engine], engine)
            row |= {"documents": n_docs, "sentences": args.sentences}
            row["sentences_per_second"] = round(args.sentences / row["seconds"], 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
        identical = outputs["local"].read_bytes() == outputs["ray"].read_bytes()
        for count in args.flat_counts:
            one_each = Path(tmp) / f"flat{count}.jsonl"
            write_documents(spert, count, 1, one_each)
            row = run_extract(args, one_each, Path(tmp) / f"flat-out{count}.jsonl", "local")
            flat.append(row | {"documents": count})
            print(json.dumps(flat[-1]), flush=True)
    local, ray = rows
    result = {
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
        "cores": os.cpu_count(),
        "engines": rows,
        "identical_output": identical,
        "ray_overhead": round(ray["seconds"] / local["seconds"] - 1, 4),
        "flat_memory": flat,
        "rss_growth": round(flat[1]["peak_rss_mb"] / flat[0]["peak_rss_mb"] - 1, 4),
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
