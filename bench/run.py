"""The main-job benchmark: `make run` timed twice (the full loop, then the cached rerun), and the
numbers of issue 5 collected into bench/results/run.json.

    python bench/run.py [--repo DIR] [--out bench/results/run.json]
    python bench/run.py --first-minutes 41.2   # the first `make run` was timed already (say how)
    python bench/run.py --schema conll04 --data ../shared/data/conll04 --out bench/results/run_conll04.json

The first run trains the SLM (unless runs/slm holds a finished one), compiles the program with
the local LLM and evaluates it on test; the second must reuse everything: its LLM calls are
counted from the stored runs' totals before and after.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def program_dir(schema: str) -> Path:
    """Where `make run SCHEMA=...` writes its program (the Makefile's PROGRAM)."""
    return Path("programs/default" if schema == "chisre" else f"programs/default-{schema}")


def llm_calls(repo: Path, program: Path) -> int:
    """Every LLM call recorded so far: the compile runs and the test run."""
    total = 0
    for run in (repo / program).glob("**/run.json"):
        blob = json.loads(run.read_text(encoding="utf-8"))
        total += int(blob.get("total", blob).get("llm_calls", 0)) - int(
            blob.get("total", blob).get("cached_calls", 0)
        )
    return total


def make_run(repo: Path, log: Path, variables: list[str]) -> float:
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as sink:
        code = subprocess.call(["make", "run", *variables], cwd=repo, stdout=sink, stderr=subprocess.STDOUT)
    if code:
        sys.exit(f"make run failed ({code}): see {log}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path, default=Path("bench/results/run.json"))
    parser.add_argument("--first-minutes", type=float, default=None)
    parser.add_argument("--data", type=Path, default=None, help="Corpus with its replay pack (make's DATA).")
    parser.add_argument("--schema", default="chisre", help="make's SCHEMA: a packaged schema name.")
    args = parser.parse_args()
    repo = args.repo.resolve()
    data = (args.data or repo.parent / "shared" / "data" / args.schema).resolve()
    program = program_dir(args.schema)
    variables = [f"SCHEMA={args.schema}", f"DATA={data}"]
    logs = repo / "runs"
    logs.mkdir(exist_ok=True)
    tag = "" if args.schema == "chisre" else f"_{args.schema}"
    first = (
        args.first_minutes
        if args.first_minutes is not None
        else make_run(repo, logs / f"make_run{tag}_1.log", variables) / 60
    )
    before = llm_calls(repo, program)
    rerun = make_run(repo, logs / f"make_run{tag}_2.log", variables)
    after = llm_calls(repo, program)

    report = json.loads((repo / program / "eval-test" / "report.json").read_text(encoding="utf-8"))
    rows = {r["name"]: r for r in report["systems"]}
    slm, compiled = rows["SLM alone"], rows[report["compiled"]]
    replay: dict = {}
    if (data / "replay").is_dir():
        replay_json = logs / "replay.json"
        subprocess.check_call(
            [str(repo / ".venv/bin/slcolm"), "replay", "--data", str(data), "--json", str(replay_json)],
            cwd=repo,
            stdout=subprocess.DEVNULL,
        )
        blob = json.loads(replay_json.read_text(encoding="utf-8"))
        policy = blob["modes"]["per-type, rule = dev_precision_recall"]["deepseek_icl_slcolm"]
        replay = {
            "deepseek_icl_slcolm": {
                "policy": "per-type, rule = dev_precision_recall (SLM dev P/R only)",
                "micro_f1": round(100 * policy["micro_f1"], 2),
                "macro_f1": round(100 * policy["macro_f1"], 2),
            }
        }
    manifest = json.loads((repo / program / "manifest.json").read_text(encoding="utf-8"))

    def pct(x: float) -> float:
        return round(100 * x, 2)

    result = {
        "slm": {
            "macro_f1": pct(slm["paper"]["macro_f1"]),
            "micro_f1": pct(slm["paper"]["micro_f1"]),
            "strict_macro_f1": pct(slm["strict"]["macro_f1"]),
            "strict_micro_f1": pct(slm["strict"]["micro_f1"]),
        },
        "compiled": {
            "policy": report["compiled"],
            "macro_f1": pct(compiled["paper"]["macro_f1"]),
            "micro_f1": pct(compiled["paper"]["micro_f1"]),
            "strict_macro_f1": pct(compiled["strict"]["macro_f1"]),
            "strict_micro_f1": pct(compiled["strict"]["micro_f1"]),
        },
        "gain_macro_f1": round(pct(compiled["paper"]["macro_f1"]) - pct(slm["paper"]["macro_f1"]), 2),
        "llm_sentence_share": round(report["llm_sentence_share"], 4),
        "llm_sentence_share_of_test_run": round(report["llm_sentence_share_of_run"], 4),
        "prompt_chars_mean": round(report["prompt_chars_mean"], 1),
        "replay": replay,
        "make_run_minutes": round(first, 1),
        "rerun_seconds": round(rerun, 1),
        "rerun_llm_calls": after - before,
        "compile_llm_calls": manifest.get("llm_calls"),
        "compile_minutes": round(manifest.get("compile_seconds", 0) / 60, 1),
        "test_llm_calls": compiled["llm_calls"],
        "lm": report["lm"],
        "command": f"make run {' '.join(variables)} (twice: python bench/run.py)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
