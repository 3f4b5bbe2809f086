"""Prompt templates: every word the LLM reads that is not the user's data.

Templates are TOML files shipped in `signatures/prompts/<name>.toml` (one per language: `zh`,
`en`), chosen by the schema's language and overridable key by key in the schema's `[prompts]`
table, or replaced wholesale by a template file of the user's (`[prompts] template = "x.toml"`).
Code asks for a text by section and key and fills its `{placeholders}`; a template that lacks a
key or spells a placeholder the code does not give is rejected when it is loaded, naming the key.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.toml_files import read_toml

# section -> key -> the placeholders the code fills in (a template may use any subset).
REQUIRED: dict[str, dict[str, frozenset[str]]] = {
    "extraction": {
        "instructions": frozenset({"domain", "entity_types", "relation_types"}),
        "list_separator": frozenset(),
        "sentence": frozenset(),
        "slm_hints": frozenset(),
        "definitions": frozenset(),
        "demonstrations": frozenset(),
        "entities": frozenset(),
        "relations": frozenset(),
    },
    "choice": {
        "instructions": frozenset({"none_of_these"}),
        "sentence": frozenset(),
        "options": frozenset(),
        "answer": frozenset(),
        "none_of_these": frozenset(),
        "holds": frozenset({"statement"}),
        "does_not_hold": frozenset(),
        "statement": frozenset({"head", "tail", "type"}),
        "completion": frozenset({"instructions", "sentence", "options"}),
    },
    "render": {
        "entity_group": frozenset({"type", "items"}),
        "entity_score": frozenset({"text", "score"}),
        "relation": frozenset({"type", "head", "tail"}),
        "relation_score": frozenset({"type", "head", "tail", "score"}),
        "item_separator": frozenset(),
        "group_separator": frozenset(),
        "none": frozenset(),
        "other_type": frozenset(),
        "hints": frozenset({"entities", "relations"}),
        "definition": frozenset({"type", "definition"}),
        "demo_sentence": frozenset({"sentence"}),
        "demo_slm": frozenset({"relations"}),
        "demo_gold_entities": frozenset({"entities"}),
        "demo_gold_relations": frozenset({"relations"}),
        "demo_title": frozenset({"n"}),
    },
    "adapter": {
        "json_only": frozenset({"shape"}),
        "field": frozenset({"label", "value"}),
    },
}

# Language code (its first part) -> shipped template; anything else reads the English one.
_TEMPLATE_FOR_LANGUAGE = {"zh": "zh", "lzh": "zh", "yue": "zh", "wuu": "zh", "en": "en"}
DEFAULT_TEMPLATE = "en"


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@dataclass(frozen=True)
class PromptTemplate:
    """The resolved texts of one template (after the schema's overrides)."""

    name: str
    texts: dict[str, dict[str, str]]
    domains: dict[str, str] = field(default_factory=dict)
    domain: str = ""
    source: str = ""

    def text(self, section: str, key: str, **values: Any) -> str:
        """The text at `section.key` with its placeholders filled from `values`."""
        raw = self.texts[section][key]
        return raw.format(**values)

    def as_toml(self) -> str:
        """The resolved template as a TOML file (a program carries it: it reads the same
        prompts whatever the installed package's templates say later)."""

        def quote(value: str) -> str:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            return '"' + escaped.replace("\t", "\\t").replace("\r", "\\r") + '"'

        lines = [f"name = {quote(self.name)}", f"domain = {quote(self.domain)}", ""]
        for section, texts in self.texts.items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {quote(value)}" for key, value in texts.items())
            lines.append("")
        return "\n".join(lines)


def template_for_language(language: str | None) -> str:
    code = (language or "").split("-")[0].split("_")[0].lower()
    return _TEMPLATE_FOR_LANGUAGE.get(code, DEFAULT_TEMPLATE)


def _read(name_or_path: str, base: Path | None) -> tuple[str, dict[str, Any]]:
    return read_toml(
        name_or_path, package="slcolm_dspy.signatures", folder="prompts", what="prompt template", base=base
    )


def _check(texts: dict[str, Any], source: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for section, keys in REQUIRED.items():
        given = texts.get(section)
        if not isinstance(given, dict):
            raise SlcolmError(f"{source}: prompt template has no [{section}] table")
        out[section] = {}
        for key, allowed in keys.items():
            value = given.get(key)
            if not isinstance(value, str):
                raise SlcolmError(f"{source}: prompt template needs a string {section}.{key}")
            try:
                used = _placeholders(value)
            except ValueError as exc:
                raise SlcolmError(f"{source}: {section}.{key}: {exc}") from None
            unknown = sorted(used - allowed)
            if unknown:
                known = ", ".join("{" + a + "}" for a in sorted(allowed)) or "none"
                raise SlcolmError(
                    f"{source}: {section}.{key} uses {', '.join('{' + u + '}' for u in unknown)};"
                    f" it may use: {known}"
                )
            out[section][key] = value
        extra = sorted(set(given) - set(keys))
        if extra:
            raise SlcolmError(f"{source}: unknown prompt keys in [{section}]: {', '.join(extra)}")
    return out


def resolve_prompts(
    language: str | None, overrides: dict[str, Any] | None, schema_source: str = ""
) -> PromptTemplate:
    """The template for a schema: its `[prompts] template` (a name or a `.toml` beside the
    schema), else the shipped one for its language; then its per-key overrides."""
    overrides = dict(overrides or {})
    base = (
        Path(schema_source).parent if schema_source and not schema_source.startswith("signatures/") else None
    )
    chosen = overrides.pop("template", None) or template_for_language(language)
    if not isinstance(chosen, str):
        raise SlcolmError(f"{schema_source}: [prompts] template must be a name or a .toml path")
    source, raw = _read(chosen, base)
    domains = {str(k): str(v) for k, v in raw.get("domains", {}).items()}
    domain = overrides.pop("domain", None) or raw.get("domain")
    if domain is None:
        code = (language or "").split("-")[0].lower()
        domain = domains.get(code, domains.get("default", ""))
    merged: dict[str, Any] = {s: dict(raw.get(s, {})) for s in REQUIRED}
    for section, values in overrides.items():
        if section not in REQUIRED or not isinstance(values, dict):
            raise SlcolmError(
                f"{schema_source}: [prompts] may hold template, domain and the tables "
                f"{', '.join(REQUIRED)}; got {section!r}"
            )
        merged[section].update(values)
    where = f"{source} (with {schema_source}'s [prompts])" if overrides else source
    return PromptTemplate(
        name=str(raw.get("name", chosen)),
        texts=_check(merged, where),
        domains=domains,
        domain=str(domain),
        source=source,
    )


def load_prompt_file(path: Path) -> PromptTemplate:
    """A resolved template written by `PromptTemplate.as_toml` (a program's own copy)."""
    source, raw = _read(str(path), None)
    return PromptTemplate(
        name=str(raw.get("name", path.stem)),
        texts=_check(raw, source),
        domain=str(raw.get("domain", "")),
        source=source,
    )
