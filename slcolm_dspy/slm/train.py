"""Train the span model: dev evaluation every epoch through the evaluator, best-on-dev checkpoint,
early stopping, a wall-clock budget, seeds, all cores."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.slm import checkpoint
from slcolm_dspy.slm.batching import Labels, collate, encode_for_training
from slcolm_dspy.slm.encoders import build_encoder
from slcolm_dspy.slm.extractor import SpanExtractor
from slcolm_dspy.slm.model import SpanRelationModel


@dataclass
class TrainConfig:
    encoder: str = "e5"
    epochs: int = 10
    max_minutes: float = 28.0
    batch_size: int = 16
    lr_encoder: float = 2e-4
    lr_heads: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    freeze_layers: int = 0
    # Negative spans per sentence (0: all). All of them (~500-2,000 a sentence) swamp the ~6
    # positives and the model predicts no entity for epochs; SpERT's 100 leaves many candidates
    # unseen. Overlap resolution at inference removes most of the false positives that remain.
    neg_spans: int = 150
    neg_pairs: int = 100
    max_span: int | None = None  # None: the longest entity in the training data
    text_form: str | None = None  # read this variant of the text (e.g. "simplified"); None: the text
    relation_threshold: float = 0.4  # starting value; the final one is chosen on dev
    threshold_grid: tuple[float, ...] = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)
    dropout: float = 0.1
    patience: int = 3
    seed: int = 13
    threads: int | None = None  # None: every core


def length_buckets(
    lengths: Sequence[int], batch_size: int, rng: random.Random, pool: int = 50
) -> list[list[int]]:
    """Batches of similar-length sentences in random order: sentences are shuffled, sorted by
    length within pools of `pool` batches, cut into batches, and the batches shuffled. Padding
    then costs little, while every epoch still sees new batch compositions."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for lo in range(0, len(order), batch_size * pool):
        chunk = sorted(order[lo : lo + batch_size * pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


StepCallback = Callable[[int, int, int, float], None]
EpochCallback = Callable[[int, dict[str, Any]], None]


def selection_score(paper: dict[str, Any]) -> tuple[float, float]:
    """Checkpoints are chosen on dev by the mean of paper-protocol micro and macro relation F1,
    ties broken by NER F1 (early on, relations are all wrong while entities already improve)."""
    return ((paper["micro_f1"] + paper["macro_f1"]) / 2, paper["ner_f1"])


def evaluate_on(extractor: SpanExtractor, records: Sequence[Sentence], schema: Schema) -> dict[str, Any]:
    predictions = extractor.predict(records)
    paper = RelationEvaluator(records, schema, "paper")(predictions)
    strict = RelationEvaluator(records, schema, "strict")(predictions)
    return {"paper": paper, "strict": strict, "score": selection_score(paper)}


def _summary_metrics(result: dict[str, Any]) -> dict[str, float]:
    keys = ("micro_f1", "macro_f1", "head_macro_f1", "tail_macro_f1", "ner_f1")
    return {f"{p}.{k}": round(100 * result[p][k], 2) for p in ("paper", "strict") for k in keys}


def choose_threshold(
    model_dir: Path, dev_records: Sequence[Sentence], schema: Schema, grid: Sequence[float]
) -> dict[str, Any]:
    """The relation threshold of the saved (best-on-dev) model, chosen on dev by the same score
    as the checkpoint, and written into its config."""
    extractor = SpanExtractor.load(model_dir)
    scored = extractor.predict_with_pair_scores(dev_records)
    evaluator = RelationEvaluator(dev_records, schema, "paper")
    tried = {t: evaluator(extractor.with_threshold(scored, t)) for t in grid}
    chosen = max(grid, key=lambda t: (selection_score(tried[t]), -abs(t - 0.4)))
    config_path = model_dir / checkpoint.CONFIG
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    saved["relation_threshold"] = chosen
    config_path.write_text(json.dumps(saved, ensure_ascii=False, indent=1), encoding="utf-8")
    return {
        "chosen": chosen,
        "dev": {
            str(t): {"micro_f1": round(100 * r["micro_f1"], 2), "macro_f1": round(100 * r["macro_f1"], 2)}
            for t, r in tried.items()
        },
    }


def train(
    train_records: Sequence[Sentence],
    dev_records: Sequence[Sentence],
    schema: Schema,
    out_dir: Path,
    config: TrainConfig,
    *,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)

    labels = Labels(tuple(schema.entity_names), schema.relation_types)
    max_span = config.max_span or max(
        (e.end or 0) - (e.start or 0) for r in train_records for e in r.entities if e.grounded
    )
    encoder, vocab = build_encoder(
        config.encoder, [r.form(config.text_form) for r in train_records], freeze_layers=config.freeze_layers
    )
    model = SpanRelationModel(
        encoder, len(labels.entity_types), len(labels.relation_types), max_span, dropout=config.dropout
    )
    saved_config = checkpoint.model_config(
        model,
        labels,
        {
            "schema": schema.name,
            "relation_threshold": config.relation_threshold,
            "text_form": config.text_form,
        },
    )
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    head_params = [p for p in model.parameters() if id(p) not in encoder_ids]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": config.lr_encoder}, {"params": head_params, "lr": config.lr_heads}],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = (len(train_records) + config.batch_size - 1) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = max(1, int(config.warmup * total_steps))

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    entity_loss = nn.CrossEntropyLoss()
    relation_loss = nn.BCEWithLogitsLoss(reduction="none")
    max_tokens = model.encoder.max_length
    extractor = SpanExtractor(
        model, vocab, labels, relation_threshold=config.relation_threshold, text_form=config.text_form
    )

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    best_score: tuple[float, float] | None = None
    stale = 0
    out_of_time = False
    lengths = [len(r.text) for r in train_records]
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        for step, indices in enumerate(length_buckets(lengths, config.batch_size, rng)):
            chunk = [train_records[i] for i in indices]
            items = [
                encode_for_training(
                    r,
                    vocab,
                    labels,
                    max_span,
                    max_tokens,
                    rng,
                    config.neg_spans,
                    config.neg_pairs,
                    config.text_form,
                )
                for r in chunk
            ]
            batch = collate(items, len(labels.relation_types), with_labels=True)
            entity_logits, relation_logits = model(batch)
            loss = entity_loss(entity_logits, batch.span_labels)
            if relation_logits.shape[0]:
                # summed over relation types, averaged over pairs (SpERT's relation loss)
                loss = loss + relation_loss(relation_logits, batch.pair_labels).sum(-1).mean()
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            if on_step:
                on_step(epoch, step + 1, steps_per_epoch, losses[-1])
            if (time.monotonic() - started) / 60 > config.max_minutes:
                out_of_time = True
                break
        model.eval()
        result = evaluate_on(extractor, dev_records, schema)
        record = {
            "epoch": epoch,
            "loss": sum(losses) / max(1, len(losses)),
            "minutes": round((time.monotonic() - started) / 60, 2),
            "score": round(100 * result["score"][0], 2),
            **_summary_metrics(result),
        }
        improved = best_score is None or result["score"] > best_score
        record["best"] = improved
        history.append(record)
        if improved:
            best, best_score = record, result["score"]
            stale = 0
            checkpoint.save(out_dir, model, vocab, saved_config)
        else:
            stale += 1
        if on_epoch:
            on_epoch(epoch, record)
        if out_of_time or stale >= config.patience:
            break
    threshold = choose_threshold(out_dir, dev_records, schema, config.threshold_grid) if best else None
    summary = {
        "config": asdict(config),
        "relation_threshold": threshold,
        "max_span": max_span,
        "vocab_size": len(vocab),
        "train_sentences": len(train_records),
        "dev_sentences": len(dev_records),
        "best_epoch": best["epoch"] if best else None,
        "minutes_to_best": best["minutes"] if best else None,
        "total_minutes": round((time.monotonic() - started) / 60, 2),
        "stopped": "time budget"
        if out_of_time
        else ("early stopping" if stale >= config.patience else "epochs"),
        "best_dev": best,
        "history": history,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / checkpoint.SUMMARY).write_text(
        json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return summary
