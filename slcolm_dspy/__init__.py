"""slcolm-dspy: a small supervised model guides a large language model to extract relations."""

import os

# Offline by default, before litellm / transformers can be imported by anything of ours: litellm
# otherwise fetches a cost map over the network on import, and the hub clients retry for a minute.
# setdefault: a user's own setting wins.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# oneDNN (bf16 inference) and ideep keep a compiled kernel for every tensor shape they meet, 1,024
# each by default; variable-length batches meet new shapes for hours, so a long extraction grew by
# ~40% from 1k to 5k documents. 16 each keeps memory flat at no measured cost in speed
# (BENCHMARKS.md, "Documents at scale"). Read on first use, so this works until torch runs a bf16 matmul.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
os.environ.setdefault("LRU_CACHE_CAPACITY", "16")

__version__ = "0.1.0"


def __getattr__(name: str):
    # `slcolm_dspy.extract(texts, program=...)`, the one-call façade, imported on first use so that
    # `import slcolm_dspy` stays light (no torch, no DSPy) for the data and evaluation layers
    if name == "extract":
        from slcolm_dspy.program.apply import extract

        return extract
    raise AttributeError(f"module 'slcolm_dspy' has no attribute {name!r}")
