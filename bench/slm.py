"""Benchmark the SLM: time to the best dev checkpoint, test scores in both protocols, inference
speed and peak memory. Writes bench/results/slm.json.

    python bench/slm.py --data ../shared/data/chisre --out runs/bench-slm            # train, then measure
    python bench/slm.py --data ../shared/data/chisre --model runs/slm                # measure a trained model

Test is scored once, with the checkpoint chosen on dev.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.slm.extractor import SpanExtractor
from slcolm_dspy.slm.train import TrainConfig, choose_threshold, train


def pct(x: float) -> float:
    return round(100 * x, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-slm"))
    parser.add_argument("--model", type=Path, help="measure this trained model instead of training")
    parser.add_argument("--encoder", default="e5")
    parser.add_argument("--freeze-layers", type=int, default=0)
    defaults = TrainConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--lr-encoder", type=float, default=defaults.lr_encoder)
    parser.add_argument("--lr-heads", type=float, default=defaults.lr_heads)
    parser.add_argument("--neg-spans", type=int, default=defaults.neg_spans)
    parser.add_argument("--max-minutes", type=float, default=defaults.max_minutes)
    parser.add_argument(
        "--text-form", default="simplified", help="read this aligned form of the text ('' for the text)"
    )
    parser.add_argument("--results", type=Path, default=Path("bench/results/slm.json"))
    parser.add_argument(
        "--choose-threshold",
        action="store_true",
        help="with --model: choose its relation threshold on dev first",
    )
    args = parser.parse_args()

    schema = load_schema("chisre")
    train_records, _ = load_split(args.data, "train", schema)
    dev_records, _ = load_split(args.data, "dev", schema)
    test_records, _ = load_split(args.data, "test", schema)
    model_dir = args.model or args.out
    if args.model is None:
        config = TrainConfig(
            encoder=args.encoder,
            freeze_layers=args.freeze_layers,
            epochs=args.epochs,
            lr_encoder=args.lr_encoder,
            lr_heads=args.lr_heads,
            neg_spans=args.neg_spans,
            max_minutes=args.max_minutes,
            text_form=args.text_form or None,
        )
        summary = train(
            train_records,
            dev_records,
            schema,
            model_dir,
            config,
            on_epoch=lambda e, r: print(json.dumps(r), flush=True),
        )
    else:
        summary = json.loads((model_dir / "training_summary.json").read_text(encoding="utf-8"))
        if args.choose_threshold:
            summary["relation_threshold"] = choose_threshold(
                model_dir, dev_records, schema, TrainConfig().threshold_grid
            )

    extractor = SpanExtractor.load(model_dir)
    extractor.predict(test_records[:32])  # warm-up
    started = time.perf_counter()
    predictions = extractor.predict(test_records)
    seconds = time.perf_counter() - started
    paper = RelationEvaluator(test_records, schema, "paper")(predictions)
    strict = RelationEvaluator(test_records, schema, "strict")(predictions)
    results = {
        "test": {
            "paper": {
                "micro_f1": pct(paper["micro_f1"]),
                "macro_f1": pct(paper["macro_f1"]),
                "head_macro_f1": pct(paper["head_macro_f1"]),
                "tail_macro_f1": pct(paper["tail_macro_f1"]),
                "ner_f1": pct(paper["ner_f1"]),
            },
            "strict": {
                "micro_f1": pct(strict["micro_f1"]),
                "macro_f1": pct(strict["macro_f1"]),
                "head_macro_f1": pct(strict["head_macro_f1"]),
                "tail_macro_f1": pct(strict["tail_macro_f1"]),
                "ner_f1": pct(strict["ner_f1"]),
            },
            "sentences": len(test_records),
        },
        "dev_best": summary["best_dev"],
        "best_epoch": summary["best_epoch"],
        "train_minutes": summary["minutes_to_best"],
        "train_total_minutes": summary["total_minutes"],
        "stopped": summary["stopped"],
        "relation_threshold": summary.get("relation_threshold"),
        "sentences_per_second": round(len(test_records) / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "encoder": summary["config"]["encoder"],
        "config": summary["config"],
        "command": "python " + " ".join(sys.argv),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in results.items() if k not in ("config", "dev_best")}, indent=1))


if __name__ == "__main__":
    main()
