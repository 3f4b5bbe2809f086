"""Readers for every input format; each returns `Sentence` records and a `ReadReport`.

Formats:
- corpus dict files (`train/dev/test.json`): one object keyed by the sentence; the SpERT twin
  file named in the schema, when present beside it, supplies the variant form of each text;
- SpERT list files (`tokens`, `entities`, `relations`);
- the generic JSON Lines format (README, "Data format"), which users convert their data to, and
  the same records as one JSON array;
- the replay pack's gold and SLM files (strings without offsets), in `replay_pack`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import DataError, SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.data.brat import BratOptions, read_brat
from slcolm_dspy.data.build import ReadReport, SentenceBuilder
from slcolm_dspy.data.io import first_jsonl_object, iter_jsonl, load_json, refuse_special_file

Records = tuple[list[Sentence], ReadReport]


def _collect(
    builder: SentenceBuilder,
    items: Iterable[tuple[str | int, Callable[[], Sentence | None]]],
    skip_bad: bool,
) -> list[Sentence]:
    """Build each record; with skip_bad, bad ones are counted in the report instead of raised."""
    out: list[Sentence] = []
    for _, make in items:
        try:
            sentence = make()
        except DataError as err:
            if not skip_bad:
                raise
            builder.report.skipped.append(err)
            continue
        if sentence is not None:
            out.append(sentence)
    return out


def _split_name(path: Path, schema: Schema) -> tuple[str | None, str | None]:
    """(split name, variant file name) when `path` is one of the schema's corpus files."""
    if schema.corpus is None:
        return None, None
    for name, files in schema.corpus.splits.items():
        if path.name in (files.file, files.variant_file):
            return name, files.variant_file
    return None, None


def read_corpus_file(path: Path, schema: Schema, *, skip_bad: bool = False) -> Records:
    """A dict-format corpus file, with the variant form from its twin file when present."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise DataError(str(path), "expected a JSON object keyed by sentence")
    split, variant_file = _split_name(path, schema)
    prefix = split or path.stem
    fixes = schema.corpus.label_fixes if schema.corpus else {}
    builder = SentenceBuilder(schema, str(path), label_fixes=fixes)
    variants = _twin_variants(path.parent / variant_file, list(data), schema) if variant_file else None
    form = schema.corpus.variant_form if schema.corpus else None

    def make(index: int, text: str, value: Any) -> Sentence | None:
        record = index + 1
        if not text.strip():
            # The published test file ends with an empty record; it is not a sentence.
            if not (isinstance(value, dict) and not value.get("entities") and not value.get("relations")):
                raise builder.fail(record, "empty sentence carries annotations")
            builder.report.dropped_empty += 1
            return None
        if not isinstance(value, dict):
            raise builder.fail(record, "value must be an object with 'entities' and 'relations'")
        for key in ("entities", "relations"):
            if key not in value:
                raise builder.fail(record, f"missing key '{key}'")
        extra = {}
        if variants is not None and form:
            extra = {form: variants[index]}
        return builder.sentence(
            sid=f"{prefix}-{record:04d}",
            text=text,
            entities=value["entities"],
            relations=value["relations"],
            record=record,
            variants=extra,
            start_keys=("start", "strat"),  # the published test file spells it "strat"
            span_keys=("span",),
        )

    items = [(i, (lambda i=i, t=t, v=v: make(i, t, v))) for i, (t, v) in enumerate(data.items())]
    return _collect(builder, items, skip_bad), builder.report


def _twin_variants(twin: Path, texts: list[str], schema: Schema) -> list[str] | None:
    """The twin file's texts, checked to align with `texts` character for character."""
    if not twin.is_file():
        return None
    data = load_json(twin)
    if not isinstance(data, list):
        raise DataError(str(twin), "expected a JSON list of SpERT records")
    if len(data) != len(texts):
        raise DataError(str(twin), f"{len(data)} records, but its dict file has {len(texts)}")
    out = []
    for index, (text, rec) in enumerate(zip(texts, data, strict=True)):
        tokens = rec.get("tokens") if isinstance(rec, dict) else None
        if isinstance(tokens, list):
            if not all(isinstance(t, str) for t in tokens):
                raise DataError(str(twin), "'tokens' must be strings", index + 1)
            tokens = "".join(tokens)
        if not isinstance(tokens, str):
            raise DataError(str(twin), "missing 'tokens'", index + 1)
        if len(tokens) != len(text):
            raise DataError(
                str(twin), f"text has {len(tokens)} chars, its dict twin has {len(text)}", index + 1
            )
        out.append(tokens)
    return out


def _join_tokens(tokens: list[Any], unsegmented: bool) -> tuple[str, list[int], list[int]] | str:
    """The text of SpERT tokens and each token's character range; a problem as a string.

    Single characters, or words of an unsegmented language, join with nothing; words join with
    one space, so token offsets map through the joined text."""
    if not all(isinstance(t, str) for t in tokens):
        bad = next(t for t in tokens if not isinstance(t, str))
        return f"'tokens' must be strings, got {bad!r}"
    glue = "" if unsegmented or all(len(t) == 1 for t in tokens) else " "
    starts, ends, pos = [], [], 0
    for token in tokens:
        starts.append(pos)
        pos += len(token)
        ends.append(pos)
        pos += len(glue)
    return glue.join(tokens), starts, ends


def read_spert(path: Path, schema: Schema, *, skip_bad: bool = False, data: Any = None) -> Records:
    """A SpERT list file: `tokens` (a string of characters, or a list of characters or words)
    and entity offsets into the tokens, mapped to character offsets of the joined text."""
    from slcolm_dspy.core.language import is_unsegmented_language

    data = load_json(path) if data is None else data
    if not isinstance(data, list):
        raise DataError(str(path), "expected a JSON list of SpERT records")
    split, _ = _split_name(path, schema)
    fixes = schema.corpus.label_fixes if schema.corpus else {}
    builder = SentenceBuilder(schema, str(path), label_fixes=fixes)
    unsegmented = bool(is_unsegmented_language(schema.language))

    def make(index: int, rec: Any) -> Sentence | None:
        record = index + 1
        if not isinstance(rec, dict):
            raise builder.fail(record, "record is not an object")
        if "tokens" not in rec:
            raise builder.fail(record, "missing key 'tokens'")
        tokens = rec["tokens"]
        if isinstance(tokens, str):
            text, entities = tokens, rec.get("entities")
        elif isinstance(tokens, list):
            joined = _join_tokens(tokens, unsegmented)
            if isinstance(joined, str):
                raise builder.fail(record, joined)
            text, starts, ends = joined
            entities = _token_to_char_offsets(rec.get("entities"), starts, ends, builder, record)
        else:
            raise builder.fail(record, f"'tokens' must be a string or a list, got {tokens!r}")
        if text == "" and not rec.get("entities") and not rec.get("relations"):
            builder.report.dropped_empty += 1
            return None
        for key in ("entities", "relations"):
            if key not in rec:
                raise builder.fail(record, f"missing key '{key}'")
        return builder.sentence(
            sid=f"{split or path.stem}-{record:04d}",
            text=text,
            entities=entities,
            relations=rec["relations"],
            record=record,
            start_keys=("start", "strat"),
            span_keys=("span",),
            # SpERT spans may be written in another form of the text than `tokens`.
            span_must_match=False,
        )

    items = [(i, (lambda i=i, r=r: make(i, r))) for i, r in enumerate(data)]
    return _collect(builder, items, skip_bad), builder.report


def _token_to_char_offsets(
    entities: Any, starts: list[int], ends: list[int], builder: SentenceBuilder, record: int
) -> Any:
    """SpERT entities with token offsets -> the same entities with character offsets."""
    if not isinstance(entities, list):
        return entities  # the builder names the problem
    out = []
    for i, ent in enumerate(entities):
        if not isinstance(ent, dict):
            out.append(ent)
            continue
        start = next((ent[k] for k in ("start", "strat") if k in ent), None)
        end = ent.get("end")
        valid = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
        if not valid or not 0 <= start < end <= len(starts):  # type: ignore[operator]
            raise builder.fail(
                record, f"entity {i} token offsets {start!r}..{end!r} out of range for {len(starts)} tokens"
            )
        converted = {k: v for k, v in ent.items() if k not in ("start", "strat", "end")}
        converted.update(start=starts[start], end=ends[end - 1])  # type: ignore[index]
        out.append(converted)
    return out


def _generic_record(builder: SentenceBuilder, path: Path) -> Callable[[int, str, Any], Sentence]:
    """Build one generic record (README, "Data format"), checking ids are unique in the file."""
    seen: set[str] = set()
    builder.count_repeats = True

    def make(number: int, record: str, rec: Any) -> Sentence:
        """`number` makes the default id (the line, or the place in the array); `record` says where."""
        if not isinstance(rec, dict):
            raise builder.fail(record, "not a JSON object")
        if "text" not in rec:
            raise builder.fail(record, "missing key 'text'")
        sid = str(rec.get("id", f"{path.stem}-{number:04d}"))
        if sid in seen:
            raise builder.fail(record, f"duplicate id {sid!r}")
        seen.add(sid)
        if not isinstance(rec["text"], str) or not rec["text"].strip():
            raise builder.fail(record, f"'text' must be a non-empty string, got {rec['text']!r:.60}")
        variants = rec.get("variants") or {}
        if not isinstance(variants, dict) or any(
            not isinstance(v, str) or len(v) != len(rec["text"]) for v in variants.values()
        ):
            raise builder.fail(record, "'variants' must map form names to texts of equal length")
        for name, form in variants.items():
            if not same_text(rec["text"], form):
                raise builder.fail(record, f"variant {name!r} is not a form of the text: {form[:30]!r}")
        return builder.sentence(
            sid=sid,
            text=rec["text"],
            entities=rec.get("entities", []),
            relations=rec.get("relations", []),
            record=record,
            variants=variants,
            allow_ungrounded=True,
        )

    return make


def same_text(text: str, form: str) -> bool:
    """Whether `form` (of equal length) is another form of `text` (traditional and simplified
    Chinese keep most characters and all punctuation in place): at least a third of the
    non-space positions hold the same character. Two unrelated texts share a few percent."""
    kept = [a == b for a, b in zip(text, form, strict=True) if not a.isspace()]
    return not kept or 3 * sum(kept) >= len(kept)


def read_jsonl(path: Path, schema: Schema, *, skip_bad: bool = False) -> Records:
    """The generic JSON Lines format: one sentence object per line."""
    builder = SentenceBuilder(schema, str(path))
    make = _generic_record(builder, path)

    def items() -> Iterator[tuple[int, Callable[[], Sentence]]]:
        # with skip_bad, a line that is not JSON (or not UTF-8) is skipped and counted like any
        # other bad record
        bad = builder.report.skipped if skip_bad else None
        for lineno, rec in iter_jsonl(path, bad=bad):
            yield lineno, (lambda lineno=lineno, rec=rec: make(lineno, f"at line {lineno}", rec))

    return _collect(builder, items(), skip_bad), builder.report


def read_json_list(path: Path, schema: Schema, *, skip_bad: bool = False) -> Records:
    """A JSON array: SpERT records (with `tokens`) or generic records (with `text`), told apart
    by the first record's keys."""
    data = load_json(path)
    first = next((r for r in data if isinstance(r, dict)), None) if isinstance(data, list) else None
    if first is not None and "tokens" not in first and "text" in first:
        builder = SentenceBuilder(schema, str(path))
        make = _generic_record(builder, path)
        items = [(i, (lambda i=i, r=r: make(i + 1, f"at index {i}", r))) for i, r in enumerate(data)]
        return _collect(builder, items, skip_bad), builder.report
    if first is not None and "tokens" not in first:
        keys = ", ".join(sorted(first)[:6])
        raise DataError(str(path), f"records have neither 'tokens' (SpERT) nor 'text' (generic): {keys}")
    return read_spert(path, schema, skip_bad=skip_bad, data=data)


def detect_format(path: Path) -> str:
    """One of: brat, corpus, json-list (SpERT or generic records), jsonl, replay-gold,
    replay-slm, replay-llm."""
    if not path.exists():
        raise SlcolmError(f"file not found: {path}")
    refuse_special_file(path)
    if path.is_dir():
        if any(path.rglob("*.ann")):
            return "brat"
        raise SlcolmError(f"{path} is a directory; give a file (or a directory of brat .txt/.ann pairs)")
    if path.suffix == ".ann" or (path.suffix == ".txt" and path.with_suffix(".ann").is_file()):
        return "brat"
    if path.suffix == ".jsonl":
        first = first_jsonl_object(path)
        if isinstance(first, dict):
            if "raw" in first:
                return "replay-llm"
            if isinstance(first.get("entities"), dict):
                return "replay-gold"
            ents = first.get("entities")
            if (
                "id" not in first
                and isinstance(ents, list)
                and ents
                and isinstance(ents[0], dict)
                and "span" in ents[0]
                and "start" not in ents[0]
            ):
                return "replay-slm"
        return "jsonl"
    if path.suffix == ".json":
        with path.open(encoding="utf-8", errors="replace") as handle:
            head = handle.read(64).lstrip()
        return "json-list" if head.startswith("[") else "corpus"
    raise SlcolmError(f"{path}: unknown format (expected .json, .jsonl or brat .txt/.ann)")


def read_records(
    path: Path | str,
    schema: Schema,
    *,
    skip_bad: bool = False,
    brat: BratOptions | None = None,
    allow_empty: bool = False,
) -> Records:
    """Read any supported file into records, choosing the reader from its content; `brat` says
    how brat documents are cut into records. An input with nothing in it (an empty file, `{}`,
    `[]`) is an error unless `allow_empty`: it is far more often a wrong path than a wish."""
    path = Path(path)
    records, report = _read_any(path, schema, skip_bad, brat)
    nothing = not (records or report.skipped or report.losses or report.dropped_empty)
    if nothing and not allow_empty:
        raise SlcolmError(f"{path}: no records in it (an empty input); check the path")
    return records, report


def _read_any(path: Path, schema: Schema, skip_bad: bool, brat: BratOptions | None) -> Records:
    from slcolm_dspy.data import replay_pack  # replay formats build on this module

    fmt = detect_format(path)
    if fmt == "brat":
        return read_brat(path, schema, skip_bad=skip_bad, options=brat)
    if fmt == "corpus":
        return read_corpus_file(path, schema, skip_bad=skip_bad)
    if fmt == "json-list":
        return read_json_list(path, schema, skip_bad=skip_bad)
    if fmt == "replay-gold":
        return replay_pack.read_gold(path, schema, skip_bad=skip_bad)
    if fmt == "replay-slm":
        return replay_pack.read_slm(path, schema, skip_bad=skip_bad)
    if fmt == "replay-llm":
        raise SlcolmError(f"{path}: raw LLM answers, not records; score them with `slcolm replay`")
    return read_jsonl(path, schema, skip_bad=skip_bad)
