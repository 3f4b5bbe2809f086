"""Peak memory and throughput of `slcolm extract --documents` as the number of documents grows.

Documents are made from a SpERT train split (one sentence per document, cycled, ids d0, d1, ...),
written as JSON Lines, and each count runs in a fresh process measured by /usr/bin/time -v (peak
RSS, wall clock). Streaming should keep peak RSS flat: the goal is 20k documents within 10% of 1k.

    python bench/documents_scale.py --program CLONE/programs/default-conll04 \\
        --slm CLONE/runs/slm-conll04 --data ../shared/data/conll04 --counts 1000 20000
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_documents(spert: Path, count: int, path: Path) -> int:
    sentences = [" ".join(s["tokens"]) for s in json.loads(spert.read_text(encoding="utf-8"))]
    chars = 0
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            text = sentences[i % len(sentences)]
            chars += len(text)
            out.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return chars


def measure(args: argparse.Namespace, count: int, work: Path) -> dict:
    docs = work / f"docs{count}.jsonl"
    chars = write_documents(args.data / args.train_file, count, docs)
    out = work / f"out{count}.jsonl"
    slcolm = Path(sys.executable).parent / "slcolm"
    cmd = ["/usr/bin/time", "-v", str(slcolm), "extract", "--program", str(args.program), str(docs)]
    cmd += ["--out", str(out), "--documents", "--slm", str(args.slm), "--data", str(args.data)]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"count {count}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    written = sum(1 for _ in out.open(encoding="utf-8"))
    return {
        "documents": count,
        "written": written,
        "characters": chars,
        "seconds": round(seconds, 1),
        "documents_per_second": round(count / seconds, 1),
        "peak_rss_mb": round(rss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--program", type=Path, required=True)
    parser.add_argument("--slm", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--train-file", default="conll04_train.json")
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--out", type=Path, default=Path("bench/results/documents_scale.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slcolm-scale-") as tmp:
        rows = [measure(args, n, Path(tmp)) for n in args.counts]
    first, last = rows[0], rows[-1]
    result = {
        "command": "python bench/documents_scale.py " + " ".join(sys.argv[1:]),
        "rows": rows,
        "rss_growth": round(last["peak_rss_mb"] / first["peak_rss_mb"] - 1, 4),
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
