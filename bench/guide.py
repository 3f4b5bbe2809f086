"""Benchmark the guide stage on a dev sample with an LLM: each module's scores against the SLM
alone, prompt size, tokens, time, routing share, and candidate-definition recall on all of dev.
Writes bench/results/guide.json.

    python bench/guide.py --data ../shared/data/chisre --slm runs/slm --lm local --limit 50
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slcolm_dspy.core.cache import cache_dir
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.readers import read_jsonl
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.guide.backends import LMSpec, open_lm
from slcolm_dspy.guide.candidates import definition_recall
from slcolm_dspy.guide.embed import make_embedder
from slcolm_dspy.guide.pipeline import Guide, GuideConfig, run_guide
from slcolm_dspy.slm.extractor import SpanExtractor

AUTHORS_PROMPT_CHARS = 1855  # the authors' k=2 prompts, reference notes §3.1


def pct(x: float) -> float:
    return round(100 * x, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--slm", type=Path, default=Path("runs/slm"))
    parser.add_argument("--lm", default="local")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-guide"))
    parser.add_argument("--results", type=Path, default=Path("bench/results/guide.json"))
    parser.add_argument("--modules", default="extract,choice", help="comma-separated: extract, choice")
    args = parser.parse_args()

    schema = load_schema("chisre")
    dev, _ = load_split(args.data, "dev", schema)
    sample = dev[: args.limit]
    inputs = [g.with_predictions((), ()) for g in sample]
    extractor = SpanExtractor.load(args.slm)
    embedder = make_embedder()
    results: dict = {"dev_sample_size": len(sample), "lm": args.lm, "command": "python " + " ".join(sys.argv)}

    # Candidate definitions on all of dev, with the SLM's predicted types included.
    guide = Guide(schema, extractor, embedder, dev, GuideConfig(), cache=cache_dir() / "embeddings")
    slm_dev = extractor.predict([g.with_predictions((), ()) for g in dev])
    chosen = guide.selector.select_all(dev, slm_dev)
    results.update({k: round(v, 4) for k, v in definition_recall(dev, chosen).items()})

    paper = RelationEvaluator(sample, schema, "paper")
    slm_scores = paper(extractor.predict(inputs))
    results["slm"] = {"micro_f1": pct(slm_scores["micro_f1"]), "macro_f1": pct(slm_scores["macro_f1"])}
    spec = LMSpec(args.lm, max_tokens=768)
    with open_lm(spec, cache_dir(), log=args.out / "server.log") as lm:
        for module in args.modules.split(","):
            config = GuideConfig(module=module, demos=2 if module == "extract" else 0)
            helper = Guide(
                schema,
                extractor,
                embedder,
                dev if config.demos else [],
                config,
                cache=cache_dir() / "embeddings",
            )
            run = run_guide(helper, inputs, lm, args.out / module, settings={"lm": args.lm})
            predictions, _ = read_jsonl(args.out / module / "predictions.jsonl", schema)
            scores = paper(predictions)
            results[module] = {
                "micro_f1": pct(scores["micro_f1"]),
                "macro_f1": pct(scores["macro_f1"]),
                "head_macro_f1": pct(scores["head_macro_f1"]),
                "tail_macro_f1": pct(scores["tail_macro_f1"]),
                "prompt_chars_mean": round(run["prompt_chars_mean"], 1),
                "prompt_tokens_mean": round(run["prompt_tokens_mean"], 1),
                "seconds_per_sentence": round(run["seconds_per_sentence"], 2),
                "llm_calls": run["llm_calls"],
                "parse_errors": run["parse_errors"],
                "routed_share": round(run["routed_share"], 4),
                "grounding": run["grounding"],
            }
    if "extract" in results:
        share = results["extract"]["prompt_chars_mean"] / AUTHORS_PROMPT_CHARS
        results["prompt_chars_vs_authors"] = round(share, 3)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
