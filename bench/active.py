"""Does choosing what to annotate grow the tail faster than annotating at random? A simulation
with the corpus's own gold as the annotator (issue 37):

    python bench/active.py --data ../shared/data/chisre --out runs/active --jobs 2

- ChisRE train is split in two halves (a fixed shuffle): the *start* is what the user has
  annotated, the *pool* is their unannotated text, its gold the oracle's answers.
- An SLM is trained on the start; `slcolm_dspy.annotate.select` ranks the pool with it (budget
  300, e5 vectors for near-duplicates); the random arm shuffles the pool (one order per seed).
- For each arm, seed and N in (100, 200, 300), an SLM is trained on the start plus the first N
  sentences of the arm's order, with the same schedule (given below), and scored on test once.
  Seeds change the training seed (and the random order); the tool's order is the one ranking.
- The chosen 300 are exported with their gold to brat and Label Studio and read back
  (`round_trip_records_changed`: records that differ after the round trip).

Each training is a child process with one thread, `--jobs` at a time, its result kept in
OUT/<run>/result.json: an interrupted bench resumes. Writes bench/results/active.json and the
learning curve bench/results/active.png.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from slcolm_dspy.core.records import Sentence, relation_type_counts
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.readers import read_jsonl
from slcolm_dspy.data.writers import write_jsonl

SIZES = (100, 200, 300)
SCHEDULE = {"encoder_layers": 4, "epochs": 5}  # the same for every run; small enough for 21 runs
SPLIT_SEED = 0


def halves(train: list[Sentence]) -> tuple[list[Sentence], list[Sentence]]:
    order = list(range(len(train)))
    random.Random(SPLIT_SEED).shuffle(order)
    cut = len(order) // 2
    return [train[i] for i in sorted(order[:cut])], [train[i] for i in sorted(order[cut:])]


def train_one(args: argparse.Namespace) -> None:
    """Child: train on the given records, score test, write result.json beside the model."""
    from slcolm_dspy.evaluate import RelationEvaluator
    from slcolm_dspy.slm.config import train_config
    from slcolm_dspy.slm.extractor import SpanExtractor
    from slcolm_dspy.slm.train import train

    schema = load_schema(args.schema)
    records, _ = read_jsonl(args.train_file, schema)
    dev, _ = load_split(args.data, "dev", schema)
    test, _ = load_split(args.data, "test", schema)
    out = args.run_dir
    config = train_config(schema, {**SCHEDULE, "seed": args.seed, "threads": 1})
    started = time.monotonic()
    summary = train(records, dev, schema, out / "slm", config)
    predictions = SpanExtractor.load(out / "slm").predict(test)
    result = {
        "sentences": len(records),
        "seed": args.seed,
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    for protocol in ("paper", "strict"):
        scores = RelationEvaluator(test, schema, protocol)(predictions)
        result[protocol] = {k: round(100 * scores[k], 2) for k in ("micro_f1", "macro_f1", "tail_macro_f1")}
    result["best_dev"] = summary["best_dev"]
    (out / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")


def run_child(args: argparse.Namespace, name: str, records: list[Sentence], seed: int) -> dict:
    run_dir = args.out / name
    done = run_dir / "result.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    run_dir.mkdir(parents=True, exist_ok=True)
    train_file = run_dir / "train.jsonl"
    write_jsonl(records, train_file)
    command = [sys.executable, __file__, "--child", "--schema", args.schema, "--data", str(args.data)]
    command += ["--out", str(args.out), "--run-dir", str(run_dir), "--train-file", str(train_file)]
    command += ["--seed", str(seed)]
    with (run_dir / "log.txt").open("w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    print(f"{name}: done", flush=True)
    return json.loads(done.read_text(encoding="utf-8"))


def tool_order(args: argparse.Namespace, schema, start: list[Sentence], pool: list[Sentence]) -> list[str]:
    """The pool's ids in the order the tool would have them annotated (top 300)."""
    path = args.out / "tool_order.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))["ids"]
    from slcolm_dspy.annotate.select import SelectSettings, select
    from slcolm_dspy.guide.embed import E5Embedder
    from slcolm_dspy.slm.extractor import SpanExtractor

    slm = SpanExtractor.load(args.out / "start-s1" / "slm")
    unlabelled = [r.with_predictions((), ()) for r in pool]
    settings = SelectSettings(budget=max(SIZES))
    chosen = select(unlabelled, slm, schema, relation_type_counts(start), settings, E5Embedder(threads=2))
    ids = [c.record.id for c in chosen]
    reasons = {c.record.id: c.reasons for c in chosen}
    path.write_text(
        json.dumps({"ids": ids, "reasons": reasons}, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schema", default="chisre")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/active"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--results", type=Path, default=Path("bench/results/active.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--train-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=13, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        train_one(args)
        return
    started = time.monotonic()
    schema = load_schema(args.schema)
    train, _ = load_split(args.data, "train", schema)
    start, pool = halves(train)
    by_id = {r.id: r for r in pool}
    seeds = list(range(1, args.seeds + 1))
    with ThreadPoolExecutor(args.jobs) as jobs:
        base = {s: jobs.submit(run_child, args, f"start-s{s}", start, 13 + s) for s in seeds}
        base[1].result()  # the tool ranks the pool with the first seed's start model
        tool = tool_order(args, schema, start, pool)
        orders = {"tool": {s: tool for s in seeds}}
        orders["random"] = {s: random.Random(s).sample([r.id for r in pool], max(SIZES)) for s in seeds}
        runs = {
            (arm, s, n): jobs.submit(
                run_child, args, f"{arm}-s{s}-n{n}", start + [by_id[i] for i in order[s][:n]], 13 + s
            )
            for arm, order in orders.items()
            for s in seeds
            for n in SIZES
        }
        results = {(arm, s, 0): base[s].result() for arm in orders for s in seeds}
        results |= {key: future.result() for key, future in runs.items()}
    summarise(args, schema, results, seeds, (start, pool), orders, time.monotonic() - started)


def summarise(args, schema, results, seeds, halves_, orders, seconds) -> None:
    from exchange_check import round_trip_changed  # bench/exchange_check.py

    from slcolm_dspy.annotate.select import tail_types

    protocol = schema.primary_protocol
    curve = {}
    for arm in ("tool", "random"):
        curve[arm] = {}
        for n in (0, *SIZES):
            tails = [results[arm, s, n][protocol]["tail_macro_f1"] for s in seeds]
            macros = [results[arm, s, n][protocol]["macro_f1"] for s in seeds]
            curve[arm][n] = {
                "tail_macro_mean": round(statistics.mean(tails), 2),
                "tail_macro_sd": round(statistics.stdev(tails), 2) if len(tails) > 1 else 0.0,
                "macro_mean": round(statistics.mean(macros), 2),
                "macro_sd": round(statistics.stdev(macros), 2) if len(macros) > 1 else 0.0,
            }
    top = max(SIZES)
    start, pool = halves_
    by_id = {r.id: r for r in pool}
    chosen_gold = [by_id[i] for i in orders["tool"][seeds[0]][:top]]
    tails = set(tail_types(schema, relation_type_counts(start), None))

    def tail_relations(ids: list[str]) -> int:
        return sum(r.type in tails for i in ids for r in by_id[i].relations)

    out = {
        "corpus": args.schema,
        "protocol": protocol,
        "seeds": seeds,
        "sentences_added": list(SIZES),
        "start_sentences": results["tool", seeds[0], 0]["sentences"],
        "pool_sentences": len(pool),
        "schedule": SCHEDULE,
        "tail_macro_gain_over_random": round(
            curve["tool"][top]["tail_macro_mean"] - curve["random"][top]["tail_macro_mean"], 2
        ),
        "macro_gain_over_random": round(
            curve["tool"][top]["macro_mean"] - curve["random"][top]["macro_mean"], 2
        ),
        # gold tail relations in the 300 sentences each arm added (random: mean over its orders)
        "tail_relations_added": {
            arm: statistics.mean(tail_relations(orders[arm][s][:top]) for s in seeds) for arm in orders
        },
        "round_trip_records_changed": round_trip_changed(chosen_gold, schema, args.out / "round-trip"),
        "curve": curve,
        "runs": {f"{arm}-s{s}-n{n}": r for (arm, s, n), r in sorted(results.items())},
        "minutes": round(seconds / 60, 1),
        "command": "python " + " ".join(sys.argv),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    chart(curve, args.results.with_suffix(".png"), protocol)
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, ensure_ascii=False, indent=1))


def chart(curve: dict, path: Path, protocol: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, style in (("tool", "o-"), ("random", "s--")):
        xs = sorted(curve[arm])
        ys = [curve[arm][n]["tail_macro_mean"] for n in xs]
        sd = [curve[arm][n]["tail_macro_sd"] for n in xs]
        ax.errorbar(xs, ys, yerr=sd, fmt=style, capsize=3, label=f"{arm} (mean ± sd)")
    ax.set_xlabel("sentences added from the pool")
    ax.set_ylabel(f"test tail macro-F1 ({protocol}), %")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
