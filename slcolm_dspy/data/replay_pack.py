"""The replay pack: the paper's recorded SLM predictions and LLM answers, with the test gold.

Its records name entities by string only (no offsets), so they come back as `Sentence`s with
ungrounded entities: one entity per listed mention, and relations pointing at the first entity
with their head/tail string. The recorded SLM output sometimes names a relation argument missing
from its own entity list; such an argument is appended as an untyped entity, so the list of
recorded entity strings (the protocol's entity filter) stays as recorded in `entity_strings`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import DataError, SlcolmError
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.data.build import ReadReport, SentenceBuilder
from slcolm_dspy.data.io import iter_jsonl, load_json

LLM_PREFIX = "llm_"


def _ungrounded(
    builder: SentenceBuilder,
    record: str,
    sid: str,
    text: str,
    mentions: list[tuple[str | None, str, float | None]],
    relations: list[Any],
) -> Sentence:
    entities = [Entity(type=t, text=s, confidence=c) for t, s, c in mentions]
    index: dict[str, int] = {}
    for i, ent in enumerate(entities):
        index.setdefault(ent.text, i)
    rels = []
    for n, raw in enumerate(relations):
        if not isinstance(raw, dict) or not {"type", "head", "tail"} <= raw.keys():
            raise builder.fail(record, f"relation {n} needs type, head and tail")
        ends = []
        for key in ("head", "tail"):
            name = raw[key]
            if not isinstance(name, str):
                raise builder.fail(record, f"relation {n} {key} must be a string")
            if name not in index:
                index[name] = len(entities)
                entities.append(Entity(type=None, text=name))
            ends.append(index[name])
        # recorded outputs: two mentions with one string make a head == tail pair; kept as recorded
        prob = builder.score(raw.get("probability"), record, f"relation {n} probability")
        rels.append(Relation(builder.relation_type(raw["type"], record), ends[0], ends[1], prob))
    return Sentence(sid, text, tuple(entities), tuple(rels))


Mentions = list[tuple[str | None, str, float | None]]


def _read(
    path: Path,
    schema: Schema,
    mentions_of: Callable[[SentenceBuilder, str, dict[str, Any]], Mentions],
    skip_bad: bool = False,
) -> tuple[list[Sentence], ReadReport]:
    builder = SentenceBuilder(schema, str(path))
    out = []
    bad = builder.report.skipped if skip_bad else None
    for lineno, rec in iter_jsonl(path, bad=bad):
        try:
            out.append(_record(builder, path, lineno, rec, mentions_of))
        except DataError as err:
            if bad is None:
                raise
            bad.append(err)
    return out, builder.report


def _record(
    builder: SentenceBuilder,
    path: Path,
    lineno: int,
    rec: Any,
    mentions_of: Callable[[SentenceBuilder, str, dict[str, Any]], Mentions],
) -> Sentence:
    """One recorded line as a record of ungrounded entities."""
    record = f"at line {lineno}"
    if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
        raise builder.fail(record, "expected an object with 'text'")
    mentions = mentions_of(builder, record, rec)
    sid = f"{path.stem}-{lineno:04d}"
    relations = rec.get("relations", [])
    if not isinstance(relations, list):
        raise builder.fail(record, "'relations' must be a list")
    builder.checked_text(rec["text"], record, "text")
    return _ungrounded(builder, record, sid, rec["text"], mentions, relations)


def _gold_mentions(builder: SentenceBuilder, record: str, rec: dict[str, Any]) -> Mentions:
    groups = rec.get("entities", {})
    if not isinstance(groups, dict):
        raise builder.fail(record, "'entities' must map type names to lists")
    out: Mentions = []
    for name, spans in groups.items():
        if not isinstance(spans, list) or not all(isinstance(x, str) for x in spans):
            raise builder.fail(record, f"entities of type {name!r} must be a list of strings")
        out.extend((builder.entity_type(name, record), span, None) for span in spans)
    return out


def _slm_mentions(builder: SentenceBuilder, record: str, rec: dict[str, Any]) -> Mentions:
    mentions: Mentions = []
    entities = rec.get("entities", [])
    if not isinstance(entities, list):
        raise builder.fail(record, "'entities' must be a list")
    for n, ent in enumerate(entities):
        if not isinstance(ent, dict) or not isinstance(ent.get("span"), str) or "type" not in ent:
            raise builder.fail(record, f"entity {n} needs a type and a string span")
        conf = builder.score(ent.get("confidence"), record, f"entity {n} confidence")
        mentions.append((builder.entity_type(ent["type"], record), ent["span"], conf))
    return mentions


def read_gold(path: Path, schema: Schema, *, skip_bad: bool = False) -> tuple[list[Sentence], ReadReport]:
    """`test401_gold.jsonl` / `dev_gold.jsonl`: entities grouped by type name, relations by string."""
    return _read(path, schema, _gold_mentions, skip_bad)


def read_slm(path: Path, schema: Schema, *, skip_bad: bool = False) -> tuple[list[Sentence], ReadReport]:
    """`slm_spert_*.jsonl`: entity strings with confidences, relations with probabilities."""
    return _read(path, schema, _slm_mentions, skip_bad)


def read_llm_answers(path: Path) -> list[tuple[str, Any]]:
    """`llm_*.jsonl`: (sentence text, the model's parsed JSON answer), in file order."""
    out = []
    for lineno, rec in iter_jsonl(path):
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str) or "raw" not in rec:
            raise DataError(str(path), "expected an object with 'text' and 'raw'", f"at line {lineno}")
        out.append((rec["text"], rec["raw"]))
    return out


@dataclass
class ReplayPack:
    """Everything in a replay pack directory, keyed by sentence text where it joins."""

    directory: Path
    test_gold: list[Sentence]
    test_slm: list[Sentence]
    runs: dict[str, list[tuple[str, Any]]]
    dev_gold: list[Sentence] = field(default_factory=list)
    dev_slm: list[Sentence] = field(default_factory=list)
    expected: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path, schema: Schema) -> ReplayPack:
        if not (directory / "test401_gold.jsonl").is_file():
            raise SlcolmError(f"no replay pack in {directory} (test401_gold.jsonl missing); pass --pack DIR")
        runs = {
            p.stem[len(LLM_PREFIX) :]: read_llm_answers(p)
            for p in sorted(directory.glob(f"{LLM_PREFIX}*.jsonl"))
        }
        dev_gold = directory / "dev_gold.jsonl"
        dev_slm = directory / "slm_spert_dev.jsonl"
        expected = directory / "expected.json"
        return cls(
            directory=directory,
            test_gold=read_gold(directory / "test401_gold.jsonl", schema)[0],
            test_slm=read_slm(directory / "slm_spert_test.jsonl", schema)[0],
            runs=runs,
            dev_gold=read_gold(dev_gold, schema)[0] if dev_gold.is_file() else [],
            dev_slm=read_slm(dev_slm, schema)[0] if dev_slm.is_file() else [],
            expected=_expected(expected),
        )


def _expected(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    blob = load_json(path)
    if not isinstance(blob, dict):
        raise DataError(str(path), f"expected a JSON object of recorded numbers, got a {type(blob).__name__}")
    _check_expected(blob, str(path))
    return blob


def _check_expected(blob: dict[str, Any], source: str) -> None:
    """The parts of expected.json the replay reads, in the shapes it reads them."""

    def bad(where: str, want: str) -> DataError:
        return DataError(source, f"{where} must be {want}")

    runs = blob.get("runs", {})
    if not isinstance(runs, dict):
        raise bad("'runs'", "an object of recorded runs")
    for name, run in runs.items():
        if not isinstance(run, dict):
            raise bad(f"runs.{name}", "an object")
        settings = run.get("settings", {"merge_mode": 0})
        if not isinstance(settings, dict) or "merge_mode" not in settings:
            raise bad(f"runs.{name}.settings", "an object with 'merge_mode'")
        if not isinstance(settings.get("W") or [], list):
            raise bad(f"runs.{name}.settings.W", "a list of relation types")
        expected = run.get("expected")
        for key in ("micro_pct", "macro_pct") if expected is not None else ():
            values = expected.get(key) if isinstance(expected, dict) else None
            if not (isinstance(values, list) and len(values) == 3 and all(_number(v) for v in values)):
                raise bad(f"runs.{name}.expected.{key}", "[precision, recall, F1] in percent")
    lists = blob.get("W_lists", {})
    if not isinstance(lists, dict) or not all(isinstance(w, list) for w in lists.values()):
        raise bad("'W_lists'", "an object of relation type lists")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
