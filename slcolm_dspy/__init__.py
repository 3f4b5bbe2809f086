"""slcolm-dspy: a small supervised model guides a large language model to extract relations."""

import os

# Offline by default, before litellm / transformers can be imported by anything of ours: litellm
# otherwise fetches a cost map over the network on import, and the hub clients retry for a minute.
# setdefault: a user's own setting wins.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__version__ = "0.1.0"


def __getattr__(name: str):
    # `slcolm_dspy.extract(texts, program=...)`, the one-call façade, imported on first use so that
    # `import slcolm_dspy` stays light (no torch, no DSPy) for the data and evaluation layers
    if name == "extract":
        from slcolm_dspy.program.apply import extract

        return extract
    raise AttributeError(f"module 'slcolm_dspy' has no attribute {name!r}")
