"""Per-type test F1 against train count, one series per SLM results file (written by
bench/slm.py, which keeps per-type F1 and the train counts), as a PNG for BENCHMARKS.md:

    python bench/tail_chart.py --protocol paper --out bench/results/tail_chisre.png \\
        "SpERT pair head=bench/results/slm_spans.json" "markers=bench/results/slm.json"

Types are points (no names: the chart needs no CJK font); a line per series joins the mean F1
of the types in each train-count bin, so the tail's trend reads at a glance.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

BINS = (0, 10, 30, 100, 300, 1000, 10**9)


def series(results: dict, counts: dict[str, int], protocol: str) -> tuple[list[int], list[float]]:
    f1 = results["test"][protocol]["per_type_f1"]
    types = [t for t in f1 if t in counts]
    return [counts[t] for t in types], [f1[t] for t in types]


def binned(counts: list[int], f1: list[float]) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for lo, hi in itertools.pairwise(BINS):
        inside = [f for c, f in zip(counts, f1, strict=True) if lo <= c < hi]
        if inside:
            members = [c for c in counts if lo <= c < hi]
            xs.append(math.exp(sum(math.log(c + 1) for c in members) / len(members)))
            ys.append(sum(inside) / len(inside))
    return xs, ys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", help="NAME=results.json")
    parser.add_argument("--protocol", default="paper")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [
        (name, json.loads(Path(path).read_text(encoding="utf-8")))
        for name, path in (run.split("=", 1) for run in args.runs)
    ]
    if len({r["corpus"] for _, r in runs}) != 1:
        raise SystemExit("the results files are of different corpora")
    # train counts are the corpus's: files written before bench/slm.py recorded them borrow them
    shared = next((r["train_counts"] for _, r in runs if r.get("train_counts")), None)
    if shared is None:
        raise SystemExit("no results file has train_counts (rerun bench/slm.py --model DIR)")
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for i, (name, results) in enumerate(runs):
        counts, f1 = series(results, shared, args.protocol)
        colour = f"C{i}"
        jitter = [c * (1 + 0.04 * i) + 1 for c in counts]
        ax.scatter(jitter, f1, s=22, alpha=0.7, color=colour, label=name)
        xs, ys = binned(counts, f1)
        ax.plot(xs, ys, color=colour, linewidth=1.5)
    ax.set_xscale("log")
    ax.set_xlabel("train relations of the type (+1, log scale)")
    ax.set_ylabel(f"test F1 ({args.protocol} protocol, %)")
    ax.set_ylim(-3, 103)
    ax.set_title(args.title or "Per-type test F1 against train count (lines: mean per bin)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
