"""Benchmark the SLM on any corpus: time to the best dev checkpoint, test scores in both
protocols (with per-type F1 and the train count of every type, for bench/tail_chart.py),
inference speed, the useful GFLOP/s of training and inference, peak memory of training and of
inference, where training time goes.

    python bench/slm.py --schema chisre --data ../shared/data/chisre --out runs/bench-slm
    python bench/slm.py --schema conll04 --data ../shared/data/conll04 --out runs/bench-slm-conll04 \\
        --results bench/results/slm_conll04.json
    python bench/slm.py --schema chisre --data ../shared/data/chisre --model runs/slm   # measure only

Training runs in this process (its peak RSS is the training figure); the test evaluation and the
speed measurement run in a fresh child process, so the inference figure is what a user's
`slcolm slm predict` needs. Test is scored once, with the checkpoint chosen on dev.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

from slcolm_dspy.core.records import relation_type_counts
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.slm.config import train_config
from slcolm_dspy.slm.train import TrainConfig, train


def pct(x: float) -> float:
    return round(100 * x, 2)


def peak_rss_mb() -> int:
    """This process's peak RSS. VmHWM belongs to the process's own memory map, which exec
    replaces; ru_maxrss survives fork + exec, so a child would report its parent's peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def layer_flops(hidden: int, intermediate: int, context: float) -> float:
    """Multiply-adds x 2 of one transformer layer for one token that attends to `context`
    tokens: Q, K, V and output projections, the feed-forward block, scores and weighted sum."""
    return 2 * (4 * hidden * hidden + 2 * hidden * intermediate + 2 * context * hidden)


def inference_flops(extractor, records, predictions) -> dict:
    """The useful arithmetic of one pass over `records`: every text token through every encoder
    layer, and each pair marker through the marked layers (padding and the heads not counted)."""
    config = extractor.model.encoder.model.config
    hidden, intermediate = config.hidden_size, config.intermediate_size
    layers = config.num_hidden_layers
    tokens = [len(extractor.vocab.encode(r.form(extractor.text_form)).ids) + 2 for r in records]
    text = sum(n * layers * layer_flops(hidden, intermediate, n) for n in tokens)
    marked = extractor.model.markers.layers if extractor.model.relation_stage == "markers" else 0
    markers = sum(
        len(p.entities) * (len(p.entities) - 1) * marked * layer_flops(hidden, intermediate, n)
        for p, n in zip(predictions, tokens, strict=True)
    )  # two markers per unordered pair of predicted entities
    return {"text_gflop": round(text / 1e9, 2), "marker_gflop": round(markers / 1e9, 2)}


def training_flops(summary: dict) -> dict | None:
    """The useful arithmetic of training (forward x 3 for forward and backward) over the seconds
    of the encoder's and heads' forward and the backward pass, from the summary's `work`."""
    work, profile = summary.get("work"), summary.get("profile") or {}
    encoder = summary.get("encoder_shape") or {}
    if not work or not encoder:
        return None
    hidden, intermediate = encoder["hidden_size"], encoder["intermediate_size"]
    per_token = layer_flops(hidden, intermediate, 0)  # attention scores added from the sums below
    text = encoder["layers"] * (work["text_tokens"] * per_token + 4 * hidden * work["text_attention"])
    marked = encoder["marker_layers"]
    markers = marked * (work["marker_tokens"] * per_token + 4 * hidden * work["marker_attention"])
    phases = ("encoder forward", "span + pair heads forward", "backward")
    seconds = sum(profile.get(p, {}).get("seconds", 0.0) for p in phases)
    total = 3 * (text + markers) / 1e9
    return {
        "gflop": round(total, 1),
        "seconds": round(seconds, 1),
        "gflop_per_second": round(total / seconds, 1) if seconds else None,
    }


def measure(schema_name: str, data: Path, model_dir: Path, threads: int | None) -> dict:
    """Test scores (with per-type F1), inference speed (after a warm-up batch), the useful
    GFLOP/s it achieved, and this process's peak RSS."""
    import torch

    from slcolm_dspy.slm.extractor import SpanExtractor

    torch.set_num_threads(threads or torch.get_num_threads())
    schema = load_schema(schema_name)
    test_records, _ = load_split(data, "test", schema)
    extractor = SpanExtractor.load(model_dir)
    extractor.predict(test_records[:32])  # warm-up
    started = time.perf_counter()
    predictions = extractor.predict(test_records)
    seconds = time.perf_counter() - started
    out: dict = {"sentences": len(test_records)}
    for protocol in ("paper", "strict"):
        result = RelationEvaluator(test_records, schema, protocol)(predictions)
        keys = ("micro_f1", "macro_f1", "head_macro_f1", "tail_macro_f1", "ner_f1")
        out[protocol] = {k: pct(result[k]) for k in keys}
        out[protocol]["per_type_f1"] = {t: pct(v["f1"]) for t, v in result["per_type"].items()}
    out["ner_f1"] = out["strict"]["ner_f1"]
    measured = {
        "test": out,
        "sentences_per_second": round(len(test_records) / seconds, 1),
        "inference_peak_rss_mb": peak_rss_mb(),
    }
    if hasattr(extractor.model.encoder, "model"):
        flops = inference_flops(extractor, test_records, predictions)
        total = flops["text_gflop"] + flops["marker_gflop"]
        measured["inference_flops"] = {**flops, "gflop_per_second": round(total / seconds, 1)}
    return measured


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schema", default="chisre")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-slm"))
    parser.add_argument("--model", type=Path, help="measure this trained model instead of training")
    parser.add_argument("--results", type=Path, default=Path("bench/results/slm.json"))
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    defaults = TrainConfig()
    for f in fields(TrainConfig):  # every training setting, as --name-with-dashes
        if f.name in ("threshold_grid", "profile"):
            continue
        default = getattr(defaults, f.name)
        kind = {"threads": int, "text_form": str, "lr_encoder": float, "encoder_layers": int}.get(
            f.name, type(default)
        )
        if kind is bool:
            kind = lambda v: v.lower() in ("1", "true", "yes")  # noqa: E731
        # absent unless given: what is not given comes from the schema's [slm], as in `slcolm slm train`
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = getattr(args, "threads", None)  # absent unless given

    if args.measure_only:
        print(json.dumps(measure(args.schema, args.data, args.model, threads)))
        return

    schema = load_schema(args.schema)
    model_dir = args.model or args.out
    train_records, _ = load_split(args.data, "train", schema)
    if args.model is None:
        dev_records, _ = load_split(args.data, "dev", schema)
        given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
        if given.get("text_form") in ("", "none"):
            given["text_form"] = None
        summary = train(
            train_records,
            dev_records,
            schema,
            model_dir,
            train_config(schema, given),
            on_epoch=lambda e, r: print(json.dumps(r), flush=True),
        )
        train_rss = peak_rss_mb()
    else:
        summary = json.loads((model_dir / "training_summary.json").read_text(encoding="utf-8"))
        train_rss = None
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--measure-only",
            "--schema",
            args.schema,
            "--data",
            str(args.data),
            "--model",
            str(model_dir),
            *(["--threads", str(threads)] if threads else []),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    train_counts = relation_type_counts(train_records)
    results = {
        "corpus": args.schema,
        **measured,
        "train_counts": {t: train_counts.get(t, 0) for t in schema.relation_types},
        "training_flops": training_flops(summary),
        "dev_best": summary["best_dev"],
        "best_epoch": summary["best_epoch"],
        "epochs": summary.get("epochs", len(summary.get("history", []))),
        "train_minutes": summary["minutes_to_best"],
        "train_total_minutes": summary["total_minutes"],
        "stopped": summary["stopped"],
        "stopped_by_time": summary.get("stopped_by_time", False),
        "relation_threshold": summary.get("relation_threshold"),
        "peak_rss_mb": train_rss,
        "units": summary.get("units"),
        "span_width": summary.get("span_width"),
        # counts only: the examples quote corpus text, which is never committed
        "boundaries": {k: v for k, v in (summary.get("boundaries") or {}).items() if k != "examples"},
        "profile": summary.get("profile"),
        "encoder": summary["config"]["encoder"],
        "config": summary["config"],
        "command": "python " + " ".join(sys.argv),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    shown = ("config", "dev_best", "profile", "relation_threshold", "span_width")
    print(json.dumps({k: v for k, v in results.items() if k not in shown}, indent=1))


if __name__ == "__main__":
    main()
