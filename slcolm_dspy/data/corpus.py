"""Where the corpus lives, loading its splits, and fetching it from its public repository."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import CorpusSpec, Schema
from slcolm_dspy.data.brat import BratOptions
from slcolm_dspy.data.build import ReadReport
from slcolm_dspy.data.io import sha256_of
from slcolm_dspy.data.readers import read_records

DATA_ENV = "SLCOLM_DATA"
DEFAULT_DATA = Path("data/chisre")


def resolve_data_dir(option: Path | None) -> Path:
    """`--data DIR`, else $SLCOLM_DATA, else data/chisre."""
    if option is not None:
        return option
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else DEFAULT_DATA


def _spec(schema: Schema) -> CorpusSpec:
    if schema.corpus is None:
        raise SlcolmError(f"schema {schema.name!r} has no [corpus] section")
    return schema.corpus


def load_split(
    data_dir: Path, split: str, schema: Schema, *, skip_bad: bool = False
) -> tuple[list[Sentence], ReadReport]:
    spec = _spec(schema)
    if split not in spec.splits:
        raise SlcolmError(f"unknown split {split!r}; choose from {', '.join(spec.splits)}")
    path = data_dir / spec.splits[split].file
    if not path.exists():  # a file, or a directory of brat documents
        if spec.fetch.get("url"):
            raise SlcolmError(f"{path} not found: run `slcolm data fetch {schema.name}` or pass --data DIR")
        raise SlcolmError(
            f"{path} not found: pass --data DIR, the folder that holds {spec.splits[split].file}"
            f" ({schema.source or schema.name} names it for the {split} split)"
        )
    brat = BratOptions(**spec.brat)  # how brat documents become records, as the schema says
    return read_records(path, schema, skip_bad=skip_bad, brat=brat)  # any supported format


def fetch_corpus(
    schema: Schema,
    out_dir: Path,
    *,
    url_template: str | None = None,
    timeout: float = 30.0,
    on_file: Callable[[str, str], None] | None = None,
) -> list[Path]:
    """Download the schema's corpus files at the pinned commit and check their sha256.

    Files already present with the right checksum are kept. A file is written under a temporary
    name and renamed only once its checksum is right, so a failed fetch leaves nothing half-written.
    """
    spec = _spec(schema)
    template = url_template or spec.fetch.get("url")
    if not template or not spec.sha256:
        raise SlcolmError(f"schema {schema.name!r} names no fetch URL or checksums")
    out_dir.mkdir(parents=True, exist_ok=True)
    fields = {k: v for k, v in spec.fetch.items() if isinstance(v, str)}
    written = []
    for name, expected in spec.sha256.items():
        target = out_dir / name
        if target.is_file() and sha256_of(target) == expected:
            if on_file:
                on_file(name, "present")
            written.append(target)
            continue
        try:
            url = template.format(**fields, file=name)
        except (KeyError, IndexError, ValueError) as exc:
            known = ", ".join("{" + k + "}" for k in (*fields, "file"))
            raise SlcolmError(
                f"fetch URL template {template!r}: bad field {exc}; known fields: {known}"
            ) from None
        tmp = target.with_name(name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as handle:
                while block := response.read(1 << 20):
                    handle.write(block)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            tmp.unlink(missing_ok=True)
            reason = getattr(exc, "reason", exc)
            raise SlcolmError(
                f"cannot download {url} ({reason}); are you offline? "
                f"Copy the files into {out_dir} by hand or pass --data DIR"
            ) from None
        actual = sha256_of(tmp)
        if actual != expected:
            tmp.unlink()
            raise SlcolmError(f"{url}: sha256 {actual} does not match the pinned {expected}")
        tmp.replace(target)
        if on_file:
            on_file(name, "downloaded")
        written.append(target)
    return written
