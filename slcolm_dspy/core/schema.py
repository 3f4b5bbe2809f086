"""The task schema: a corpus's types and conventions, read from `signatures/<name>.toml`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.prompts import PromptTemplate, resolve_prompts
from slcolm_dspy.core.schema_shape import check_shape
from slcolm_dspy.core.toml_files import read_toml


@dataclass(frozen=True)
class SplitFiles:
    file: str
    variant_file: str | None = None


@dataclass(frozen=True)
class CorpusSpec:
    primary_form: str | None
    variant_form: str | None
    label_fixes: dict[str, str]
    splits: dict[str, SplitFiles]
    fetch: dict[str, Any]
    sha256: dict[str, str]
    # how brat documents become records: line_breaks, unit (data.brat.BratOptions)
    brat: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperProtocolSpec:
    form: str | None
    strip_words: tuple[str, ...]
    filter_excludes: tuple[str, ...]


@dataclass(frozen=True)
class Schema:
    name: str
    entity_names: dict[str, str]
    relation_types: tuple[str, ...]
    direction_insensitive: frozenset[str]
    head_types: tuple[str, ...]
    head_threshold: int | None
    normalise_cut_at: str | None
    normalise_delete: tuple[str, ...]
    aliases: dict[str, str]
    corpus: CorpusSpec | None
    paper: PaperProtocolSpec
    definitions: dict[str, str] = field(default_factory=dict)
    statements: dict[str, str] = field(default_factory=dict)
    triggers: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    # every word of the prompts that is not data (signatures/prompts/, the schema's [prompts])
    prompts: PromptTemplate = field(default_factory=lambda: resolve_prompts(None, None), repr=False)
    # Types the data holds that this schema leaves out on purpose: readers count and drop them.
    skip_relation_types: frozenset[str] = frozenset()
    # A draft's reading mode (`slcolm schema init`): readers accept any type name as it is.
    open_types: bool = False

    @property
    def language(self) -> str | None:
        """The corpus language's ISO 639 code (`[schema] language`), if the schema names one."""
        return self.raw.get("schema", {}).get("language")

    @property
    def spaced(self) -> bool:
        """Whether the language writes spaces between words (word units, word triggers)."""
        from slcolm_dspy.core.language import is_unsegmented_language

        return is_unsegmented_language(self.language) is False

    @property
    def primary_protocol(self) -> str:
        """The protocol that selects checkpoints and headlines results: `[evaluation] primary`,
        strict unless the schema says otherwise (ChisRE keeps the authors' paper protocol)."""
        return self.raw.get("evaluation", {}).get("primary", "strict")

    @property
    def tail_types(self) -> tuple[str, ...]:
        head = set(self.head_types)
        return tuple(t for t in self.relation_types if t not in head)

    def normalise_relation(self, raw: str) -> str:
        """Map a raw relation name to its canonical form (it may still be outside the inventory)."""
        name = raw
        if self.normalise_cut_at:
            name = name.split(self.normalise_cut_at, 1)[0]
        for piece in self.normalise_delete:
            name = name.replace(piece, "")
        return self.aliases.get(name, name)

    def entity_code(self, name: str) -> str | None:
        """The type code for a code or display name (`PER` or `人物`), None if unknown.

        Exact names first; then case, surrounding space and inner spacing are ignored, since
        LLMs write "Organization" or " ORGANIZATION" where the schema says "organization"."""
        if name in self.entity_names:
            return name
        exact, loose = self._entity_lookup
        return exact.get(name) or loose.get(_loose(name))

    # Built once per schema: grounding asks for every mention an LLM writes.
    @cached_property
    def _entity_lookup(self) -> tuple[dict[str, str], dict[str, str]]:
        exact: dict[str, str] = {}
        loose: dict[str, str] = {}
        for code, display in self.entity_names.items():
            exact.setdefault(display, code)
            loose.setdefault(_loose(code), code)
            loose.setdefault(_loose(display), code)
        return exact, loose

    def relation_code(self, name: str) -> str | None:
        """The inventory type a (normalised) relation name means, ignoring case and spacing."""
        if name in self.relation_types:
            return name
        return self._relation_lookup.get(_loose(name))

    @cached_property
    def _relation_lookup(self) -> dict[str, str]:
        return {_loose(t): t for t in self.relation_types}


def _loose(name: str) -> str:
    return "".join(name.split()).replace("_", "").replace("-", "").casefold()


def open_schema(cut_at: str | None = None, delete: tuple[str, ...] = ()) -> Schema:
    """A schema with no inventory that readers accept every type name under (for drafting one
    from data); relation names are normalised by `cut_at` / `delete` as a schema would."""
    return Schema(
        name="draft",
        entity_names={},
        relation_types=(),
        direction_insensitive=frozenset(),
        head_types=(),
        head_threshold=None,
        normalise_cut_at=cut_at,
        normalise_delete=delete,
        aliases={},
        corpus=None,
        paper=PaperProtocolSpec(None, (), ()),
        open_types=True,
    )


def _read_companion(source: str, name: str) -> dict[str, Any]:
    """A file named by the schema (e.g. its trigger lexicon), beside the schema file."""
    if source.startswith("signatures/"):
        resource = resources.files("slcolm_dspy.signatures").joinpath(name)
        blob = resource.read_bytes() if resource.is_file() else None
    else:
        path = Path(source).parent / name
        blob = path.read_bytes() if path.is_file() else None
    if blob is None:
        raise SlcolmError(f"{source}: companion file {name} not found")
    try:
        return tomllib.loads(blob.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SlcolmError(f"{name}: not valid TOML: {exc}") from None


def load_schema(name_or_path: str | Path = "chisre") -> Schema:
    """Load a schema by name (shipped in `signatures/`) or from a `.toml` path."""
    source, raw = read_toml(name_or_path, package="slcolm_dspy.signatures", folder="", what="schema")
    check_shape(raw, source)
    try:
        return _build(raw, source)
    except (KeyError, TypeError) as exc:
        raise SlcolmError(f"{source}: missing or malformed schema entry {exc}") from None


def _build(raw: dict[str, Any], source: str) -> Schema:
    relations = raw["relations"]
    types = tuple(relations["types"])
    norm = relations.get("normalise", {})
    head_tail = raw.get("head_tail", {})
    insensitive = frozenset(relations.get("direction_insensitive", []))
    skip = frozenset(relations.get("skip", []))
    both = sorted(skip & set(types))
    if both:
        raise SlcolmError(f"{source}: [relations] lists {', '.join(both)} in both types and skip")
    head = tuple(head_tail.get("head", types))
    for listed in (insensitive, head):
        unknown = sorted(set(listed) - set(types))
        if unknown:
            raise SlcolmError(f"{source}: types not in [relations].types: {', '.join(unknown)}")
    corpus = None
    if "corpus" in raw:
        c = raw["corpus"]
        fetch = dict(c.get("fetch", {}))
        corpus = CorpusSpec(
            primary_form=c.get("primary_form"),
            variant_form=c.get("variant_form"),
            label_fixes=dict(c.get("label_fixes", {})),
            splits={
                name: SplitFiles(spec["file"], spec.get("variant_file"))
                for name, spec in c.get("splits", {}).items()
            },
            fetch=fetch,
            sha256=dict(fetch.pop("sha256", {})),
            brat=dict(c.get("brat", {})),
        )
    paper = raw.get("evaluation", {}).get("paper", {})
    definitions = dict(raw.get("definitions", {}))
    unknown = sorted(set(definitions) - set(types))
    if unknown:
        raise SlcolmError(f"{source}: definitions for types not in [relations].types: {', '.join(unknown)}")
    statements = dict(raw.get("statements", {}))
    bad = sorted(t for t, x in statements.items() if t not in types or "{head}" not in x or "{tail}" not in x)
    if bad:
        raise SlcolmError(f"{source}: statements must name a known type and use {{head}} and {{tail}}: {bad}")
    triggers_file = raw.get("guide", {}).get("triggers")
    triggers = _read_companion(source, triggers_file).get("triggers", {}) if triggers_file else {}
    return Schema(
        name=raw["schema"]["name"],
        entity_names=dict(raw["entities"]),
        relation_types=types,
        direction_insensitive=insensitive,
        head_types=head,
        head_threshold=head_tail.get("threshold_train_count"),
        normalise_cut_at=norm.get("cut_at"),
        normalise_delete=tuple(norm.get("delete", ())),
        aliases=dict(relations.get("aliases", {})),
        corpus=corpus,
        paper=PaperProtocolSpec(
            form=paper.get("form"),
            strip_words=tuple(paper.get("strip_words", ())),
            filter_excludes=tuple(paper.get("filter_excludes", ())),
        ),
        definitions=definitions,
        statements=statements,
        triggers={t: list(g) for t, g in triggers.items() if t in types},
        source=source,
        skip_relation_types=skip,
        raw=raw,
        prompts=resolve_prompts(raw["schema"].get("language"), raw.get("prompts"), source),
    )
