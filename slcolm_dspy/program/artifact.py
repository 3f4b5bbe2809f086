"""The compiled-program directory that `slcolm compile` writes and `extract` / `evaluate` read.

    program.json      the DSPy program state (predictors: signatures, instructions, any demos)
    settings.json     the guide settings (module, demonstrations, definitions, routing,
                      answer thresholds) and the merge policy, all chosen on dev
    retrieval.json    where demonstrations come from: pool split and its checksum, source,
                      embedder, k, order
    slm.json          the SLM it was compiled with: path and SHA-256 of its weights
    schema/           a copy of the task schema (and its companion files)
    prompts.toml      the resolved prompt template (language template + the schema's overrides)
    dev_metrics.json  the chosen candidate's dev scores, and the candidate table
    manifest.json     format version, the LM it was compiled with, sample size, LLM calls

No secret is written: the LM is recorded by its model string and API base only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.prompts import load_prompt_file
from slcolm_dspy.core.schema import Schema, load_schema
from slcolm_dspy.data.io import sha256_of
from slcolm_dspy.merge.policy import MergePolicy
from slcolm_dspy.program.module import SLCoLMProgram, config_from_json, config_to_json

FORMAT = "slcolm-program/1"
SLM_WEIGHTS = "model.safetensors"
PROMPTS = "prompts.toml"


def _write_json(path: Path, blob: Any) -> None:
    path.write_text(json.dumps(blob, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise SlcolmError(f"{path.parent} is not a compiled program: {path.name} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SlcolmError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise SlcolmError(f"{path}: not a readable JSON file ({type(exc).__name__})") from None


# What each file of a program directory must hold (format slcolm-program/1): field -> type.
REQUIRED_FIELDS: dict[str, dict[str, type]] = {
    "manifest.json": {"format": str, "schema": str, "lm": dict},
    "settings.json": {"guide": dict, "policy": dict},
    "retrieval.json": {},
    "slm.json": {"path": str, "sha256": str},
    "dev_metrics.json": {},
}


def _read_part(directory: Path, name: str) -> dict[str, Any]:
    """One program file, checked against REQUIRED_FIELDS: every problem names file and field."""
    path = directory / name
    blob = _read_json(path)
    if not isinstance(blob, dict):
        raise SlcolmError(f"{path}: expected a JSON object, got {type(blob).__name__}")
    for key, kind in REQUIRED_FIELDS[name].items():
        if key not in blob:
            raise SlcolmError(f"{path}: missing field {key!r} ({FORMAT} needs it)")
        if not isinstance(blob[key], kind):
            raise SlcolmError(
                f"{path}: field {key!r} must be a JSON {_JSON_NAMES[kind]}, got {type(blob[key]).__name__}"
            )
    return blob


_JSON_NAMES = {str: "string", dict: "object", list: "array", int: "integer"}


def _copy_schema(schema: Schema, target: Path) -> Path:
    """Copy the schema file and every companion TOML it names into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    if schema.source.startswith("signatures/"):
        root = resources.files("slcolm_dspy.signatures")

        def read(name: str) -> bytes:
            return root.joinpath(name).read_bytes()
    else:
        base = Path(schema.source).parent

        def read(name: str) -> bytes:
            return (base / name).read_bytes()

    main = Path(schema.source).name
    (target / main).write_bytes(read(main))
    for name in _companions(schema.raw):
        (target / name).write_bytes(read(name))
    return target / main


def _companions(raw: Mapping[str, Any]) -> list[str]:
    """File names (`*.toml`) the schema refers to, at any depth."""
    out = []
    for value in raw.values():
        if isinstance(value, str) and value.endswith(".toml"):
            out.append(value)
        elif isinstance(value, Mapping):
            out += _companions(value)
    return out


def slm_reference(slm_dir: Path) -> dict[str, str]:
    weights = slm_dir / SLM_WEIGHTS
    if not weights.is_file():
        raise SlcolmError(f"{slm_dir}: no trained SLM here ({SLM_WEIGHTS} missing)")
    return {"path": str(slm_dir), "sha256": sha256_of(weights)}


def save_program(
    out: Path,
    program: SLCoLMProgram,
    schema: Schema,
    *,
    lm: Mapping[str, Any],
    slm_dir: Path,
    retrieval: Mapping[str, Any],
    dev_metrics: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the program directory (files first, the manifest last: a directory without a
    manifest is an interrupted compile)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    program.save(str(out / "program.json"))
    _write_json(out / "settings.json", program.settings())
    _write_json(out / "retrieval.json", dict(retrieval))
    # where the SLM is, seen from the program too: a program moved with its SLM (or run from
    # another folder) still finds it
    reference = slm_reference(slm_dir)
    reference["relative_to_program"] = os.path.relpath(slm_dir.resolve(), out.resolve())
    reference["absolute"] = str(slm_dir.resolve())
    _write_json(out / "slm.json", reference)
    if (out / "schema").exists():
        shutil.rmtree(out / "schema")
    schema_file = _copy_schema(schema, out / "schema")
    # the prompts as compiled: a later package with other template wording reads these
    (out / PROMPTS).write_text(schema.prompts.as_toml(), encoding="utf-8")
    _write_json(out / "dev_metrics.json", dict(dev_metrics))
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "lm": dict(lm),
        "schema": str(schema_file.relative_to(out)),
        **dict(extra or {}),
    }
    _write_json(out / "manifest.json", manifest)
    return out


@dataclass
class CompiledProgram:
    directory: Path
    program: SLCoLMProgram
    schema: Schema
    manifest: dict[str, Any]
    retrieval: dict[str, Any]
    slm: dict[str, str]
    dev_metrics: dict[str, Any]
    # guides built for this program in this process, by (SLM dir, data dir): loading the SLM and
    # the embedder costs seconds, and a stream of documents asks for the guide once per batch
    guides: dict[tuple[Path | None, Path | None], Any] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def policy(self) -> MergePolicy:
        return self.program.policy

    def slm_dir(self, override: Path | None = None) -> Path:
        """The SLM to run: `override`, else the first place the program recorded that holds it
        (beside the program as it was, where it was, the path as given at compile time); its
        weights must match the hash recorded at compile time (another SLM gives other hints than
        the program was tuned on)."""
        if override is not None:
            return self._checked_slm(override)
        beside = self.slm.get("relative_to_program")
        places = [Path(os.path.normpath(self.directory / beside))] if beside else []
        places += [Path(self.slm[k]) for k in ("absolute", "path") if k in self.slm]
        for place in places:
            weights = place / SLM_WEIGHTS
            if weights.is_file() and sha256_of(weights) == self.slm["sha256"]:
                return place
        for place in places:
            if (place / SLM_WEIGHTS).is_file():
                return self._checked_slm(place)  # there, but another SLM: say so
        tried = ", ".join(dict.fromkeys(str(p) for p in places))
        raise SlcolmError(f"the program's SLM is not at {tried} ({SLM_WEIGHTS} missing): pass --slm DIR")

    def _checked_slm(self, path: Path) -> Path:
        weights = path / SLM_WEIGHTS
        if not weights.is_file():
            raise SlcolmError(
                f"the program's SLM {path} is not there ({SLM_WEIGHTS} missing): pass --slm DIR"
            )
        if sha256_of(weights) != self.slm["sha256"]:
            raise SlcolmError(
                f"{weights} differs from the SLM the program was compiled with (sha256 mismatch): "
                "compile again, or pass the original with --slm"
            )
        return path


def load_program(directory: Path) -> CompiledProgram:
    if not directory.is_dir():
        raise SlcolmError(f"program directory not found: {directory}")
    manifest = _read_part(directory, "manifest.json")
    if manifest.get("format") != FORMAT:
        raise SlcolmError(
            f"{directory}: unknown program format {manifest.get('format')!r}; expected {FORMAT}"
        )
    schema_path = directory / manifest["schema"]
    if not schema_path.is_file() or directory.resolve() not in schema_path.resolve().parents:
        raise SlcolmError(
            f"{directory / 'manifest.json'}: schema {manifest['schema']!r} is not a file in the program"
        )
    schema = load_schema(schema_path)
    if (directory / PROMPTS).is_file():
        schema = dataclasses.replace(schema, prompts=load_prompt_file(directory / PROMPTS))
    settings = _read_part(directory, "settings.json")
    try:
        config = config_from_json(settings["guide"])
        policy = MergePolicy.from_json(settings["policy"])
    except SlcolmError as exc:
        raise SlcolmError(f"{directory / 'settings.json'}: {exc}") from None
    program = SLCoLMProgram(schema, config, policy)
    if not (directory / "program.json").is_file():
        raise SlcolmError(f"{directory} is not a compiled program: program.json is missing")
    try:
        program.load(str(directory / "program.json"))
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise SlcolmError(f"{directory / 'program.json'}: not a saved SLCoLM program ({exc})") from None
    return CompiledProgram(
        directory,
        program,
        schema,
        manifest,
        _read_part(directory, "retrieval.json"),
        _read_part(directory, "slm.json"),
        _read_part(directory, "dev_metrics.json"),
    )


__all__ = ["CompiledProgram", "config_to_json", "load_program", "save_program", "slm_reference"]
