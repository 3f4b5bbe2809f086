"""LLM backends: every model is reached through LiteLLM (`dspy.LM(engine="litellm")`).

`--lm` takes any LiteLLM model string (`openai/gpt-4o-mini`, `deepseek/deepseek-chat`, ...) and
`--api-base` any OpenAI-compatible server; keys come from the environment only (LiteLLM reads
the provider's variable, e.g. OPENAI_API_KEY). `--lm local` starts the embedded llama.cpp server
on loopback with a verified local model and points LiteLLM at it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.guide.local_model import DEFAULT_LOCAL_MODEL, LOCAL_MODELS, assemble
from slcolm_dspy.guide.server import MODEL_ALIAS, LocalServer

LOCAL = "local"
# Local servers need no key, but the OpenAI client insists on one; this is not a secret.
PLACEHOLDER_KEY = "sk-local-no-key"


# Run settings' defaults, in one place: the CLI's options and the Python API both read these.
DEFAULT_MAX_TOKENS = 768
DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class LMSpec:
    """Which LLM a run talks to and how: run settings, never stored in a compiled program."""

    model: str  # a LiteLLM model string, or "local" / "local:<name>"
    api_base: str | None = None
    temperature: float = 0.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    timeout: float = DEFAULT_TIMEOUT

    @property
    def is_local(self) -> bool:
        return self.model == LOCAL or self.model.startswith(LOCAL + ":")

    @property
    def local_name(self) -> str:
        return self.model.partition(":")[2] or DEFAULT_LOCAL_MODEL


def build_lm(spec: LMSpec, api_base: str | None = None, model: str | None = None, **extra: Any):
    """A `dspy.LM` routed through LiteLLM."""
    import dspy

    name = model or spec.model
    base = api_base or spec.api_base
    kwargs: dict[str, Any] = {
        "engine": "litellm",
        "temperature": spec.temperature,
        "max_tokens": spec.max_tokens,
        # one retry layer: ours (guide/faults.py), which honours Retry-After and records failures
        "num_retries": 0,
        "timeout": spec.timeout,
        **extra,
    }
    if base:
        kwargs["api_base"] = base
        # a server named by --api-base is OpenAI-compatible; a key, if it needs one, comes from
        # the environment through LiteLLM, never from our files
        if "/" not in name:
            name = f"openai/{name}"
        if name.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
            kwargs["api_key"] = PLACEHOLDER_KEY
    return dspy.LM(name, **kwargs)


@contextlib.contextmanager
def open_lm(spec: LMSpec, cache: Path, *, parallel: int = 1, log: Path | None = None) -> Iterator[Any]:
    """Yield a ready `dspy.LM`; for `local`, with its server running until the block ends."""
    if not spec.is_local:
        yield build_lm(spec)
        return
    if spec.local_name not in LOCAL_MODELS:
        raise SlcolmError(f"unknown local model {spec.local_name!r}; choose from {', '.join(LOCAL_MODELS)}")
    gguf = assemble(spec.local_name, cache / "models")
    with LocalServer(gguf, parallel=parallel, log=log) as server:
        yield build_lm(spec, api_base=server.api_base, model=f"openai/{MODEL_ALIAS}")
