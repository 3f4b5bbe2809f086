"""Where derived files live (converted encoders, GGUF models, embedding caches): `$SLCOLM_CACHE`,
else `~/.cache/slcolm-dspy`. Never inside the repository, never committed."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SLCOLM_CACHE"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "slcolm-dspy")
