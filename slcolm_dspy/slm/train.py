"""Train the span model on a fixed schedule: dev evaluation every epoch through the evaluator,
best-on-dev checkpoint, relation thresholds chosen on dev, seeds, all cores.

The schedule is a fixed number of epochs, so a result does not depend on how busy the machine
was; `max_minutes` is only a guard, and when it cuts the summary says so (`stopped_by_time`).
With `freeze_layers` k, the embeddings and the k lowest encoder layers are frozen and their
output is computed once per sentence and cached: later epochs run only the upper layers.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence, relation_type_counts
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.slm import checkpoint
from slcolm_dspy.slm.batching import (
    Batch,
    BoundaryReport,
    Labels,
    collate,
    derive_span_rules,
    prepare_example,
    sample_training_item,
)
from slcolm_dspy.slm.config import LR_ENCODER_BY_UNIT, RELATION_STAGES, TrainConfig
from slcolm_dspy.slm.encoders import build_encoder
from slcolm_dspy.slm.extractor import SpanExtractor, autocast_context
from slcolm_dspy.slm.markers import pair_groups
from slcolm_dspy.slm.model import SpanRelationModel
from slcolm_dspy.slm.tail import WeightAverage, encode_labels, label_texts, logit_offsets, type_pairs
from slcolm_dspy.slm.units import choose_unit


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


def selection_score(result: dict[str, Any]) -> tuple[float, float]:
    """Checkpoints are chosen on dev by the mean of micro and macro relation F1 in the schema's
    primary protocol, ties broken by NER F1 (early on, relations are all wrong while entities
    already improve)."""
    return ((result["micro_f1"] + result["macro_f1"]) / 2, result["ner_f1"])


def evaluate_on(extractor: SpanExtractor, records: Sequence[Sentence], schema: Schema) -> dict[str, Any]:
    predictions = extractor.predict(records)
    paper = RelationEvaluator(records, schema, "paper")(predictions)
    strict = RelationEvaluator(records, schema, "strict")(predictions)
    primary = paper if schema.primary_protocol == "paper" else strict
    return {"paper": paper, "strict": strict, "score": selection_score(primary)}


def _summary_metrics(result: dict[str, Any]) -> dict[str, float]:
    keys = ("micro_f1", "macro_f1", "head_macro_f1", "tail_macro_f1", "ner_f1")
    return {f"{p}.{k}": round(100 * result[p][k], 2) for p in ("paper", "strict") for k in keys}


class Timer:
    """Seconds spent per phase, summed over the run."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.seconds: dict[str, float] = defaultdict(float)
        self._last = time.perf_counter()

    def start(self) -> None:
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        if self.enabled:
            now = time.perf_counter()
            self.seconds[phase] += now - self._last
            self._last = now

    def to_json(self) -> dict[str, float]:
        total = sum(self.seconds.values()) or 1.0
        return {k: {"seconds": round(v, 1), "share": round(v / total, 3)} for k, v in self.seconds.items()}


@dataclass
class Work:
    """What training fed the encoder, for the arithmetic it did (bench/slm.py turns it into
    GFLOP/s): tokens, the sum of their attention spans, and the same for pair markers."""

    text_tokens: int = 0
    text_attention: int = 0  # sum over tokens of the row length they attend to
    marker_tokens: int = 0
    marker_attention: int = 0

    def add(self, batch: Batch, stage: str) -> None:
        rows = batch.row_mask.sum(1)
        self.text_tokens += int(rows.sum())
        self.text_attention += int((rows * rows).sum())
        if stage == "markers" and batch.pairs.shape[0]:
            groups = pair_groups(batch.spans, batch.pairs)
            sentence = batch.spans[groups.first, 0]
            self.marker_tokens += 2 * int(groups.first.shape[0])
            self.marker_attention += 2 * int(batch.mask.sum(1)[sentence].sum())

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class LowerStates:
    """The frozen lower layers' output per (sentence, window), computed once and reused every
    epoch (they never change). Stored in float32: ~150 kB per 100 tokens of e5-small."""

    def __init__(self, model: SpanRelationModel, precision: str) -> None:
        self.encoder = model.encoder
        self.precision = precision
        self.store: dict[tuple[int, int], torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, batch: Batch) -> torch.Tensor:
        missing = [r for r, key in enumerate(batch.row_keys) if key not in self.store]
        if missing:
            index = torch.tensor(missing)
            with autocast_context(self.precision):
                states = self.encoder.lower(batch.rows[index], batch.row_mask[index]).float()
            for i, r in enumerate(missing):
                length = int(batch.row_mask[r].sum())
                self.store[batch.row_keys[r]] = states[i, :length].clone()  # type: ignore[index]
        out = torch.zeros(batch.rows.shape[0], batch.rows.shape[1], self.encoder.hidden_size)
        for r, key in enumerate(batch.row_keys):
            cached = self.store[key]  # type: ignore[index]
            out[r, : cached.shape[0]] = cached
        return out


def choose_thresholds(
    extractor: SpanExtractor, dev_records: Sequence[Sentence], schema: Schema, config: TrainConfig
) -> dict[str, Any]:
    """The global relation threshold on dev (grid, selection score), then per-type thresholds:
    each type's best grid value on dev, shrunk toward the global one by its dev support. The
    per-type rule is kept only if it beats the global threshold in a 2-fold cross-fit on dev (fit
    on one half, score on the other), so its many choices do not flatter it."""
    scored = extractor.predict_with_pair_scores(dev_records)
    grid = config.threshold_grid
    protocol = schema.primary_protocol

    def score(indices: Sequence[int], cut: float | np.ndarray) -> tuple[float, float]:
        gold = [dev_records[i] for i in indices]
        preds = extractor.with_threshold([scored[i] for i in indices], cut)
        return selection_score(RelationEvaluator(gold, schema, protocol)(preds))

    def fit(indices: Sequence[int]) -> tuple[float, np.ndarray]:
        best_global = max(grid, key=lambda t: (score(indices, t), -abs(t - 0.4)))
        gold = [dev_records[i] for i in indices]
        support = relation_type_counts(gold)
        per_type = np.full(len(extractor.labels.relation_types), best_global, dtype=np.float32)
        evaluator = RelationEvaluator(gold, schema, protocol)
        subset = [scored[i] for i in indices]
        tables = {t: evaluator(extractor.with_threshold(subset, t))["per_type"] for t in grid}
        for k, name in enumerate(extractor.labels.relation_types):
            n = support.get(name, 0)
            if not n:
                continue
            own = max(grid, key=lambda t: (tables[t].get(name, {}).get("f1", 0.0), -abs(t - best_global)))
            per_type[k] = (n * own + config.threshold_shrinkage * best_global) / (
                n + config.threshold_shrinkage
            )
        return best_global, per_type

    everything = list(range(len(dev_records)))
    chosen, per_type = fit(everything)
    result: dict[str, Any] = {
        "chosen": chosen,
        "dev": {
            str(t): {
                "micro_f1": round(100 * r["micro_f1"], 2),
                "macro_f1": round(100 * r["macro_f1"], 2),
            }
            for t in grid
            for r in [RelationEvaluator(dev_records, schema, protocol)(extractor.with_threshold(scored, t))]
        },
        "per_type": None,
    }
    if config.per_type_thresholds and len(dev_records) >= 20:
        rng = random.Random(config.seed)
        shuffled = everything[:]
        rng.shuffle(shuffled)
        folds = (shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :])
        global_score, per_type_score = [], []
        for fit_on, score_on in (folds, folds[::-1]):
            g, p = fit(fit_on)
            global_score.append(score(score_on, g)[0])
            per_type_score.append(score(score_on, p)[0])
        crossfit = {
            "global": round(100 * statistics.mean(global_score), 2),
            "per_type": round(100 * statistics.mean(per_type_score), 2),
        }
        kept = crossfit["per_type"] > crossfit["global"]
        result["per_type_crossfit"] = crossfit
        if kept:
            result["per_type"] = {
                name: round(float(per_type[k]), 3) for k, name in enumerate(extractor.labels.relation_types)
            }
    return result


def choose_type_constraints(
    model_dir: Path, dev_records: Sequence[Sentence], schema: Schema
) -> dict[str, Any]:
    """Score dev with and without the entity-type-pair constraint (relation types zeroed for
    type pairs train never had them on); keep it only if the selection score rises."""
    plain = evaluate_on(SpanExtractor.load(model_dir), dev_records, schema)["score"]
    _set_config(model_dir, type_constraints=True)
    constrained = evaluate_on(SpanExtractor.load(model_dir), dev_records, schema)["score"]
    kept = constrained > plain
    _set_config(model_dir, type_constraints=kept)
    return {"kept": kept, "dev_without": round(100 * plain[0], 2), "dev_with": round(100 * constrained[0], 2)}


def _set_config(model_dir: Path, **values: Any) -> None:
    config_path = model_dir / checkpoint.CONFIG
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    saved.update(values)
    config_path.write_text(json.dumps(saved, ensure_ascii=False, indent=1), encoding="utf-8")


def _encoder_shape(model: SpanRelationModel) -> dict[str, int] | None:
    """Layer sizes of a transformer encoder (for the arithmetic per token); None otherwise."""
    hf = getattr(model.encoder, "model", None)
    if hf is None:
        return None
    return {
        "hidden_size": int(hf.config.hidden_size),
        "intermediate_size": int(hf.config.intermediate_size),
        "layers": len(hf.encoder.layer) - model.encoder.freeze_layers,
        "marker_layers": model.markers.layers if model.relation_stage == "markers" else 0,
    }


def _relation_stage(setting: str, encoder: nn.Module) -> str:
    """`auto`: the marker stage where the encoder has BERT-style layers to carry the markers."""
    if setting not in ("auto", *RELATION_STAGES):
        raise SlcolmError(f"relation stage {setting!r}: expected auto, {' or '.join(RELATION_STAGES)}")
    if setting == "auto":
        return "markers" if getattr(encoder, "splittable", False) else "spans"
    if setting == "markers" and not getattr(encoder, "splittable", False):
        raise SlcolmError("--relation-stage markers needs a BERT-style encoder (not --encoder scratch)")
    return setting


def _write_thresholds(model_dir: Path, chosen: dict[str, Any]) -> None:
    _set_config(model_dir, relation_threshold=chosen["chosen"], relation_thresholds=chosen["per_type"])


def relation_pos_weight(
    records: Sequence[Sentence], relation_types: Sequence[str], balance: float
) -> torch.Tensor | None:
    if not balance:
        return None
    counts = relation_type_counts(records)
    present = [counts[t] for t in relation_types if counts[t]]
    median = statistics.median(present) if present else 1.0
    weights = [max(1.0, (median / counts[t]) ** balance) if counts[t] else 1.0 for t in relation_types]
    return torch.tensor(weights)


def _fused_adamw_available() -> bool:
    try:
        torch.optim.AdamW([nn.Parameter(torch.zeros(1))], fused=True)
    except (RuntimeError, ValueError):
        return False
    return True


@dataclass
class _State:
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    best_score: tuple[float, float] | None = None
    stale: int = 0
    stopped_by_time: bool = False


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
    timer = Timer(config.profile)

    labels = Labels(tuple(schema.entity_names), schema.relation_types)
    texts = [r.form(config.text_form) for r in train_records]
    unit = config.units if config.units != "auto" else choose_unit(schema.language, texts)
    described = label_texts(schema) if config.label_vectors and config.encoder != "scratch" else []
    encoder, vocab = build_encoder(
        config.encoder,
        texts + described,  # the definitions' words get their pretrained rows too
        unit=unit,
        freeze_layers=config.freeze_layers,
        keep_layers=config.encoder_layers,
    )
    stage = _relation_stage(config.relation_stage, encoder)
    encoded = [vocab.encode(t) for t in texts]
    rules, width_stats = derive_span_rules(train_records, encoded, config.span_percentile)
    boundary = BoundaryReport()
    examples = [
        prepare_example(i, r, vocab, labels, rules, config.text_form, boundary)
        for i, r in enumerate(train_records)
    ]
    timer.lap("prepare")
    label_vectors = encode_labels(encoder, vocab, described) if described else None
    model = SpanRelationModel(
        encoder,
        len(labels.entity_types),
        len(labels.relation_types),
        rules.max_width,
        dropout=config.dropout,
        relation_stage=stage,
        marker_layers=config.marker_layers,
        label_dim=0 if label_vectors is None else label_vectors.shape[1],
    )
    if label_vectors is not None:
        model.label_vectors.copy_(label_vectors)
    saved_config = checkpoint.model_config(
        model,
        labels,
        {
            "schema": schema.name,
            "units": unit,
            "span_rules": rules.to_json(),
            "relation_threshold": config.relation_threshold,
            "relation_thresholds": None,
            "text_form": config.text_form,
            "type_pairs": type_pairs(train_records, schema),
            # per relation type: how many train relations it had (the report's tail chart)
            "train_counts": dict(relation_type_counts(train_records)),
            "type_constraints": False,  # chosen on dev after training
        },
    )
    lr_encoder = config.lr_encoder if config.lr_encoder is not None else LR_ENCODER_BY_UNIT[unit]
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    head_params = [p for p in model.parameters() if id(p) not in encoder_ids]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": lr_encoder}, {"params": head_params, "lr": config.lr_heads}],
        weight_decay=config.weight_decay,
        # one fused kernel for every parameter instead of a loop of small ops per tensor
        fused=_fused_adamw_available(),
    )
    steps_per_epoch = (len(examples) + config.batch_size - 1) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = max(1, int(config.warmup * total_steps))

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    entity_loss = nn.CrossEntropyLoss()
    relation_loss = nn.BCEWithLogitsLoss(
        reduction="none",
        pos_weight=relation_pos_weight(train_records, labels.relation_types, config.relation_balance),
    )
    offsets = logit_offsets(examples, len(labels.relation_types), config.neg_pairs, config.logit_adjustment)
    average = WeightAverage(model, config.ema_decay) if config.ema_decay else None
    max_tokens = model.encoder.max_length
    extractor = SpanExtractor(
        model,
        vocab,
        labels,
        rules,
        relation_threshold=config.relation_threshold,
        text_form=config.text_form,
        precision=config.precision,
    )
    cached = getattr(model.encoder, "splittable", False) and getattr(model.encoder, "freeze_layers", 0) > 0
    lower = LowerStates(model, config.precision) if cached else None

    state = _State()
    work = Work()
    lengths = [len(e.text.ids) for e in examples]
    for epoch in range(1, config.epochs + 1):
        model.train()
        if lower is not None:
            # frozen layers stay in eval mode: their cached output is what inference computes
            for layer in model.encoder.model.encoder.layer[: model.encoder.freeze_layers]:
                layer.eval()
            model.encoder.model.embeddings.eval()
        losses = []
        for step, indices in enumerate(length_buckets(lengths, config.batch_size, rng)):
            timer.start()
            items = [
                sample_training_item(examples[i], rng, config.neg_spans, config.neg_pairs) for i in indices
            ]
            batch = collate(items, vocab, len(labels.relation_types), max_tokens, with_labels=True)
            work.add(batch, stage)
            timer.lap("collate")
            # The trained part runs in fp32: bf16 autocast bought no steady gain on a training step
            # here (casts eat the faster matrix products); inference and the frozen layers use it.
            if lower is not None:
                before = len(lower.store)
                lower_states = lower(batch)
                if len(lower.store) > before:
                    timer.lap("frozen layers (once per sentence)")
                context = model.encode(batch, lambda _b, s=lower_states: s)
            else:
                context = model.encode(batch)
            timer.lap("encoder forward")
            entity_logits, relation_logits = model.heads(batch, context)
            timer.lap("span + pair heads forward")
            loss = entity_loss(entity_logits.float(), batch.span_labels)
            if offsets is not None:
                relation_logits = relation_logits + offsets
            if relation_logits.shape[0]:
                # summed over relation types, averaged over pairs (SpERT's relation loss)
                loss = loss + relation_loss(relation_logits.float(), batch.pair_labels).sum(-1).mean()
            optimizer.zero_grad()
            loss.backward()
            timer.lap("backward")
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update()
            timer.lap("optimizer")
            losses.append(loss.item())
            if on_step:
                on_step(epoch, step + 1, steps_per_epoch, losses[-1])
            if (time.monotonic() - started) / 60 > config.max_minutes:
                state.stopped_by_time = True
                break
        model.eval()
        timer.start()
        result = evaluate_on(extractor, dev_records, schema)
        timer.lap("dev evaluation")
        _record_epoch(state, epoch, losses, started, result, out_dir, model, vocab, saved_config, on_epoch)
        if average is not None:
            # the averaged weights compete with the raw ones for the checkpoint
            average.swap()
            timer.start()
            result = evaluate_on(extractor, dev_records, schema)
            timer.lap("dev evaluation")
            _record_epoch(
                state, epoch, losses, started, result, out_dir, model, vocab, saved_config, on_epoch, "ema"
            )
            average.swap()
        if state.stopped_by_time or (config.patience and state.stale >= config.patience):
            break
    threshold = None
    if state.best:
        timer.start()
        threshold = choose_thresholds(SpanExtractor.load(out_dir), dev_records, schema, config)
        _write_thresholds(out_dir, threshold)
        if config.type_constraints:
            threshold["type_constraints"] = choose_type_constraints(out_dir, dev_records, schema)
        timer.lap("threshold choice on dev")
    epochs_run = len({h["epoch"] for h in state.history})  # with EMA, two records an epoch
    summary = {
        "config": asdict(config),
        "units": unit,
        "relation_stage": stage,
        "label_vectors": label_vectors is not None,
        "encoder_shape": _encoder_shape(model),
        "lr_encoder": lr_encoder,
        "span_width": width_stats,
        "boundaries": boundary.to_json(),
        "relation_threshold": threshold,
        "max_span": rules.max_width,
        "vocab_size": len(vocab),
        "train_sentences": len(train_records),
        "dev_sentences": len(dev_records),
        "epochs": epochs_run,
        "best_epoch": state.best["epoch"] if state.best else None,
        "minutes_to_best": state.best["minutes"] if state.best else None,
        "total_minutes": round((time.monotonic() - started) / 60, 2),
        "stopped_by_time": state.stopped_by_time,
        "stopped": "time guard"
        if state.stopped_by_time
        else ("early stopping" if epochs_run < config.epochs else "epochs"),
        "best_dev": state.best,
        "profile": timer.to_json(),
        "work": work.to_json(),
        "history": state.history,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / checkpoint.SUMMARY).write_text(
        json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return summary


def _record_epoch(
    state: _State,
    epoch: int,
    losses: list[float],
    started: float,
    result: dict[str, Any],
    out_dir: Path,
    model: SpanRelationModel,
    vocab: Any,
    saved_config: dict[str, Any],
    on_epoch: EpochCallback | None,
    weights: str = "raw",
) -> None:
    record = {
        "epoch": epoch,
        "weights": weights,
        "loss": sum(losses) / max(1, len(losses)),
        "minutes": round((time.monotonic() - started) / 60, 2),
        "score": round(100 * result["score"][0], 2),
        **_summary_metrics(result),
    }
    improved = state.best_score is None or result["score"] > state.best_score
    record["best"] = improved
    state.history.append(record)
    if improved:
        state.best, state.best_score = record, result["score"]
        state.stale = 0
        checkpoint.save(out_dir, model, vocab, saved_config)
    elif weights == "raw":  # an epoch is stale once, whichever weights were scored after it
        state.stale += 1
    if on_epoch:
        on_epoch(epoch, record)
