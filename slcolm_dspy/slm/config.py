"""Training settings of the SLM (no torch import: the CLI reads the defaults cheaply)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from slcolm_dspy.core.errors import SlcolmError

if TYPE_CHECKING:
    from slcolm_dspy.core.schema import Schema

LR_ENCODER_BY_UNIT = {"char": 2e-4, "word": 5e-5}
# the relation designs of the model (`relation_stage`); a setting may also say "auto"
RELATION_STAGES = ("spans", "markers")


@dataclass
class TrainConfig:
    encoder: str = "e5"
    # Ten epochs of full fine-tuning, the best measured schedule (BENCHMARKS.md, "SLM"): 16.7 min
    # for CoNLL04 (922 sentences) on 2 cores; ChisRE (3,208) takes up to 40 min so, to fit the
    # 20-minute budget, its schema's [slm] table sets a shorter schedule chosen on dev; freezing
    # and caching 8 lower layers (--freeze-layers 8) is 2x faster but lost 10 dev points.
    epochs: int = 10
    max_minutes: float = 60.0  # a guard, not the schedule
    batch_size: int = 16
    # None: by unit. Characters 2e-4 (ChisRE: chosen over 1e-4 on dev). Words 5e-5 (SpERT's
    # rate): at 2e-4 the subword encoder collapsed on CoNLL04 (dev NER 0.0 after 10 epochs, the
    # loss stuck at the class prior), at 5e-5 dev NER was 52 after 2 epochs (BENCHMARKS.md).
    lr_encoder: float | None = None
    lr_heads: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    freeze_layers: int = 0
    encoder_layers: int | None = None  # keep the n lowest encoder layers (None: all)
    units: str = "auto"  # char | word | auto (the schema's language, else detected from the data)
    span_percentile: float = 99.5  # maximum span width: this percentile of train entity widths
    # Negative spans per sentence (0: all). All of them swamp the few positives and the model
    # predicts no entity for epochs; overlap resolution at inference removes most of the false
    # positives that sampling leaves.
    neg_spans: int = 100
    neg_pairs: int = 100
    text_form: str | None = None  # read this variant of the text (e.g. "simplified"); None: the text
    # Class-balanced relation loss: positives of type t weigh (median count / count_t) ** balance
    # (at least 1), so rare types are not drowned by frequent ones. 0 turns it off.
    relation_balance: float = 0.0
    # The relation stage: "spans" (SpERT's pooled spans, their types and the context between
    # them), "markers" (also typed levitated markers that read the sentence with the pair in view,
    # PURE / PL-Marker; BERT-style encoders only), "auto" (markers where the encoder allows).
    # Spans by default: chosen on dev of both corpora (BENCHMARKS.md, "The long tail"): the marker
    # stage scored 2.3 (ChisRE) and 2.4 (CoNLL04) dev points lower and costs 1.7x per epoch.
    relation_stage: str = "spans"
    # The encoder's top layers that carry the markers (0: every trained layer).
    marker_layers: int = 4
    # Label vectors: each relation type's name and definition encoded once by the pretrained
    # encoder; the pair is also scored against them (pretrained encoders only). Off by default:
    # 0.8 dev points lower than without on ChisRE (BENCHMARKS.md, "The long tail").
    label_vectors: bool = False
    # Logit adjustment (Menon et al. 2021) in the relation loss: tau x (each type's log-odds
    # among training pairs - the median type's) is added to its logit in training only, so rare
    # types must earn a larger margin. 0 turns it off.
    logit_adjustment: float = 0.0
    # Exponential moving average of the weights; each epoch's dev evaluation scores the raw and
    # the averaged weights and either may become the checkpoint. 0 turns it off.
    ema_decay: float = 0.0
    # Offer (on dev, after training) to zero relation types for entity-type pairs never seen
    # with them in train; kept only where dev says it helps (kept on CoNLL04, not on ChisRE).
    type_constraints: bool = True
    relation_threshold: float = 0.4  # starting value; the final one is chosen on dev
    threshold_grid: tuple[float, ...] = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)
    per_type_thresholds: bool = True  # offered on dev (cross-fitted), kept only where it helps
    threshold_shrinkage: float = 10.0  # pseudo-count pulling a type's threshold toward the global one
    # Inference and the frozen layers: bf16 autocast where the CPU has bf16 units (auto) | bf16 |
    # fp32. The trained layers always run in fp32.
    precision: str = "auto"
    dropout: float = 0.1
    patience: int = 0  # epochs without dev improvement before stopping (0: run the whole schedule)
    seed: int = 13
    threads: int | None = None  # None: every core
    profile: bool = True  # time every phase of every step (summary["profile"])


def train_config(schema: Schema, given: Mapping[str, Any]) -> TrainConfig:
    """The training settings for `schema`'s corpus: TrainConfig's defaults, then the schema's
    `[slm]` table (settings chosen on that corpus's dev, e.g. a schedule that fits the training
    budget), then what the user gave, which always wins. The text form defaults to the corpus's
    variant form (e5 saw far more simplified than traditional Chinese; chosen on dev)."""
    names = {f.name for f in fields(TrainConfig)}
    from_schema = dict(schema.raw.get("slm", {}))
    unknown = sorted(set(from_schema) - names)
    if unknown:
        raise SlcolmError(f"{schema.source}: [slm] {', '.join(unknown)}: not a training setting")
    defaults = TrainConfig()
    for name, value in from_schema.items():
        default = getattr(defaults, name)
        fits = isinstance(value, type(default)) and isinstance(value, bool) == isinstance(default, bool)
        if default is not None and not fits and not (isinstance(default, float) and type(value) is int):
            raise SlcolmError(f"{schema.source}: [slm] {name} = {value!r}: expected {type(default).__name__}")
    if schema.corpus and schema.corpus.variant_form:
        from_schema.setdefault("text_form", schema.corpus.variant_form)
    given = {k: v for k, v in given.items() if k in names}
    if given.get("encoder", TrainConfig.encoder) == "scratch":
        # the schema's layer count is for the pretrained encoder it was chosen with; the
        # scratch BiLSTM has no such layers (given on the command line, it is still an error)
        from_schema.pop("encoder_layers", None)
    return TrainConfig(**(from_schema | given))
