"""Draft a schema from annotated data (`slcolm schema init`) and check one against data
(`slcolm schema check`).

The draft's inventories are the train split's types, most frequent first; types seen only in
dev or test are reported (a schema maps them with `label_fixes` or adds them). Relation names
written with alternatives ("任职&爵位&谥号") or bracketed qualifiers ("生于（地点）") get a proposed
normalisation. A type whose annotated pairs join entities of one type and whose head comes
first about as often as its tail is flagged as a direction-insensitive candidate for review.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.language import detect_unsegmented
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema, open_schema
from slcolm_dspy.data.brat import BratOptions
from slcolm_dspy.data.readers import read_records

SPLITS = ("train", "dev", "test")
_BRACKETS = ("（", "）", "(", ")", " ", "\u3000")


_SPLIT_WORDS = {"train": "train", "dev": "dev", "valid": "dev", "validation": "dev", "test": "test"}


def split_of(path: Path) -> str | None:
    """train / dev / test when the file's name says so as a word ("conll04_dev.json",
    "valid.jsonl"); None for a name with no split word, or with two ("train_dev.json")."""
    stem = (path.name if path.is_dir() else path.stem).lower()
    found = {_SPLIT_WORDS[w] for w in re.split(r"[^a-z0-9]+", stem) if w in _SPLIT_WORDS}
    return found.pop() if len(found) == 1 else None


def data_files(paths: Iterable[Path]) -> list[tuple[str, Path]]:
    """(split, file) of the data named: a file given alone is train unless its name says
    otherwise; a directory's .json/.jsonl files (or its brat folders) are chosen by the split
    word in their names. Where two files could be one split, the one named just that split wins
    (ChisRE's `train.json` over its SpERT twin `chisre_train.json`); otherwise a one-line error
    lists them."""
    paths = list(paths)
    chosen: dict[str, list[Path]] = {}
    for path in paths:
        if _brat_dir(path):
            chosen.setdefault(split_of(path) or "train", []).append(path)  # brat documents: one source
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") or _brat_dir(p))
            for file in found:
                split = split_of(file)
                if split:
                    chosen.setdefault(split, []).append(file)
        elif path.is_file():
            chosen.setdefault(split_of(path) or ("train" if len(paths) == 1 else "?"), []).append(path)
        else:
            raise SlcolmError(f"--data: no such file or directory: {path}")
    if "?" in chosen:
        names = ", ".join(p.name for p in chosen["?"])
        raise SlcolmError(f"--data: cannot tell which split {names} is: put train, dev or test in its name")
    if not chosen:
        listed = ", ".join(str(p) for p in paths)
        raise SlcolmError(f"--data {listed}: no file named for a split (train, dev, valid, test)")
    return [(split, _one(split, chosen[split])) for split in SPLITS if split in chosen]


def _brat_dir(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*.ann"))


def _one(split: str, candidates: list[Path]) -> Path:
    if len(candidates) == 1:
        return candidates[0]
    exact = [p for p in candidates if (p.name if p.is_dir() else p.stem).lower() == split]
    if len(exact) == 1:
        return exact[0]
    names = ", ".join(p.name for p in candidates)
    raise SlcolmError(f"--data: {len(candidates)} files could be the {split} split ({names}); name one file")


def proposed_normalisation(raw_names: Iterable[str]) -> tuple[str | None, tuple[str, ...]]:
    names = list(raw_names)
    cut_at = "&" if any("&" in n for n in names) else None
    delete = tuple(b for b in _BRACKETS if any(b in n for n in names))
    return cut_at, delete


@dataclass
class Profile:
    """Type counts per split, as the draft and the check need them."""

    files: dict[str, list[str]] = field(default_factory=dict)
    sentences: Counter[str] = field(default_factory=Counter)
    entities: dict[str, Counter[str]] = field(default_factory=dict)
    relations: dict[str, Counter[str]] = field(default_factory=dict)
    # relation type -> why its relations were not read (cross-sentence, argument lost, ...)
    lost: dict[str, Counter[str]] = field(default_factory=dict)
    same_type: Counter[str] = field(default_factory=Counter)  # train pairs joining one entity type
    head_first: Counter[str] = field(default_factory=Counter)  # train pairs whose head comes first
    unsegmented: bool = False

    def add(self, split: str, records: Sequence[Sentence]) -> None:
        self.sentences[split] += len(records)
        ents = self.entities.setdefault(split, Counter())
        rels = self.relations.setdefault(split, Counter())
        for record in records:
            ents.update(e.type for e in record.entities if e.type)
            for rel in record.relations:
                rels[rel.type] += 1
                if split == "train":
                    head, tail = record.entities[rel.head], record.entities[rel.tail]
                    self.same_type[rel.type] += head.type == tail.type
                    self.head_first[rel.type] += (head.start or 0) < (tail.start or 0)


def profile(paths: Sequence[Path], schema: Schema, brat: BratOptions | None = None) -> Profile:
    """Read every file (any supported format) and count its types per split, and the types of
    relations the reader could not keep."""
    result = Profile()
    texts: list[str] = []
    for split, path in data_files(paths):
        records, report = read_records(path, schema, brat=brat)
        for (rel_type, cause), n in report.lost_relations.items():
            result.lost.setdefault(rel_type, Counter())[cause] += n
        result.files.setdefault(split, []).append(path.name)
        result.add(split, records)
        texts += [r.text for r in records[:2000]]
    if not result.sentences["train"]:
        raise SlcolmError("--data: no train split found (name a file with 'train' in it, or give one file)")
    result.unsegmented = detect_unsegmented(texts)
    return result


def raw_relation_names(paths: Sequence[Path], brat: BratOptions | None = None) -> Counter[str]:
    """Relation names exactly as written (kept or not), to propose a normalisation."""
    counts: Counter[str] = Counter()
    for _, path in data_files(paths):
        records, report = read_records(path, open_schema(), brat=brat)
        counts.update(r.type for rec in records for r in rec.relations)
        counts.update({rel_type: n for (rel_type, _), n in report.lost_relations.items()})
    return counts


def only_lost(prof: Profile) -> dict[str, Counter[str]]:
    """Relation types whose every relation was lost by the reader -> why (the draft skips them)."""
    read = {t for counts in prof.relations.values() for t in counts}
    return {t: causes for t, causes in sorted(prof.lost.items()) if t not in read}


def _why(causes: Counter[str]) -> str:
    return ", ".join(f"{n} {cause.replace('_', ' ')}" for cause, n in causes.most_common())


def symmetric_candidates(prof: Profile, min_count: int = 5) -> list[str]:
    out = []
    for rel_type, n in prof.relations.get("train", Counter()).items():
        if n < min_count:
            continue
        first = prof.head_first[rel_type] / n
        if prof.same_type[rel_type] / n >= 0.9 and 0.3 <= first <= 0.7:
            out.append(rel_type)
    return out


def _unseen_entity_types(unseen: dict[str, list[str]]) -> dict[str, list[str]]:
    """Entity types missing from train -> the splits they appear in."""
    out: dict[str, list[str]] = {}
    for split, types in unseen.items():
        for t in types:
            out.setdefault(t, []).append(split)
    return dict(sorted(out.items()))


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def draft_schema(
    paths: Sequence[Path], name: str, head_threshold: int = 100, brat: BratOptions | None = None
) -> tuple[str, dict]:
    """The draft schema's TOML text and a summary of what was found."""
    cut_at, delete = proposed_normalisation(raw_relation_names(paths, brat))
    prof = profile(paths, open_schema(cut_at, delete), brat)
    skipped = only_lost(prof)
    train_rel = prof.relations["train"]
    types = [t for t, _ in sorted(train_rel.items(), key=lambda x: (-x[1], x[0]))]
    train_ent = prof.entities["train"]
    entity_types = [t for t, _ in sorted(train_ent.items(), key=lambda x: (-x[1], x[0]))]
    head = [t for t in types if train_rel[t] >= head_threshold]
    symmetric = symmetric_candidates(prof)
    unseen = {
        split: sorted(set(prof.relations.get(split, {})) - set(types)) for split in SPLITS if split != "train"
    }
    unseen_entities = {
        split: sorted(set(prof.entities.get(split, {})) - set(entity_types))
        for split in SPLITS
        if split != "train"
    }
    language = "zh" if prof.unsegmented else "en"
    lines = [
        f"# Draft schema for {name}, written by `slcolm schema init` from the annotated data.",
        "# Review every line marked TODO; `slcolm schema check` lists what is still missing.",
        "",
        "[schema]",
        f"name = {_q(name)}",
        f"description = {_q(f'{name}: {len(entity_types)} entity types, {len(types)} relation types')}",
        f"# detected: {'an unsegmented script (characters)' if prof.unsegmented else 'spaced words'};"
        " TODO: the ISO 639 code",
        f"language = {_q(language)}",
        "",
        "# Entity type code -> display name (the name prompts use). Train counts in comments.",
        "[entities]",
        *(f"{_q(t)} = {_q(t)}  # TODO display name; {train_ent[t]} in train" for t in entity_types),
        # kept, so dev and test read: an entity type cannot be mapped away like a relation type
        *(
            f"{_q(t)} = {_q(t)}  # TODO review: 0 in train, seen in {', '.join(splits)} only"
            for t, splits in _unseen_entity_types(unseen_entities).items()
        ),
        "",
        "[relations]",
        "# Most frequent in train first; counts: " + ", ".join(f"{t} {train_rel[t]}" for t in types),
        "types = [" + ", ".join(_q(t) for t in types) + "]",
        "# TODO review: types whose pairs join one entity type with no preferred order in the text",
        "direction_insensitive = [" + ", ".join(_q(t) for t in symmetric) + "]",
        "# Types in the data none of whose relations can be read as records (readers count and drop them):",
        *(f"#   {t}: {sum(c.values())} relations: {_why(c)}" for t, c in skipped.items()),
        "skip = [" + ", ".join(_q(t) for t in skipped) + "]",
    ]
    if cut_at or delete:
        lines += [
            "",
            "# Raw names are normalised: the part before `cut_at`, then every `delete` string removed.",
            "[relations.normalise]",
            *([f"cut_at = {_q(cut_at)}"] if cut_at else []),
            "delete = [" + ", ".join(_q(d) for d in delete) + "]",
        ]
    lines += [
        "",
        "[head_tail]",
        'rule = "train count >= threshold_train_count"',
        f"threshold_train_count = {head_threshold}",
        "head = [" + ", ".join(_q(t) for t in head) + "]",
        "",
        "[corpus]",
    ]
    if any(unseen.values()):
        missing = sorted({t for ts in unseen.values() for t in ts})
        lines += [
            "# TODO: types in dev/test but not in train; map each onto an inventory type:",
            "label_fixes = { " + ", ".join(f"{_q(t)} = {_q('TODO')}" for t in missing) + " }",
        ]
    if brat and brat != BratOptions():
        lines += [f"brat = {{ line_breaks = {_q(brat.line_breaks)}, unit = {_q(brat.unit)} }}"]
    for split in SPLITS:
        for file in prof.files.get(split, [])[:1]:
            lines += [f"[corpus.splits.{split}]", f"file = {_q(file)}"]
    lines += [
        "",
        "[evaluation]",
        'primary = "strict"',
        "",
        "# TODO: one sentence per type saying what its head and its tail are.",
        "[definitions]",
        *(f"{_q(t)} = {_q('TODO: what the head and the tail of ' + t + ' are')}" for t in types),
        "",
    ]
    summary = {
        "sentences": dict(prof.sentences),
        "entity_types": {t: train_ent[t] for t in entity_types},
        "relation_types": {t: train_rel[t] for t in types},
        "head": head,
        "direction_insensitive_candidates": symmetric,
        "not_in_train": unseen,
        "skipped": {t: dict(c) for t, c in skipped.items()},
        "entity_types_not_in_train": unseen_entities,
        "language": language,
        "normalise": {"cut_at": cut_at, "delete": list(delete)},
    }
    return "\n".join(lines), summary


def check_schema(schema: Schema, paths: Sequence[Path], brat: BratOptions | None = None) -> list[str]:
    """Every problem between a schema and the data, one line each (empty: none)."""
    reading = open_schema(schema.normalise_cut_at, schema.normalise_delete)
    prof = profile(paths, reading, brat)
    fixes = schema.corpus.label_fixes if schema.corpus else {}
    problems: list[str] = []

    def unknown(raw: str) -> bool:
        name = fixes.get(schema.aliases.get(raw, raw), schema.aliases.get(raw, raw))
        return schema.relation_code(name) is None and name not in schema.skip_relation_types

    for split in SPLITS:
        for raw, n in sorted(prof.relations.get(split, Counter()).items()):
            if unknown(raw):
                problems.append(
                    f"relation type {raw!r} ({n} in {split}) is in neither [relations].types nor skip"
                )
        for raw, n in sorted(prof.entities.get(split, Counter()).items()):
            if schema.entity_code(raw) is None:
                problems.append(f"entity type {raw!r} ({n} in {split}) is not in [entities]")
    for raw, causes in only_lost(prof).items():
        if unknown(raw):
            problems.append(
                f"relation type {raw!r} is in the data ({_why(causes)}) but in neither [relations].types"
                " nor skip"
            )
    train_rel = prof.relations.get("train", Counter())
    for rel_type in schema.relation_types:
        if not train_rel.get(rel_type):
            problems.append(f"relation type {rel_type!r} has no train relation (empty type)")
        definition = schema.definitions.get(rel_type, "")
        if not definition.strip() or definition.startswith("TODO"):
            problems.append(f"relation type {rel_type!r} has no definition in [definitions]")
    train_ent = prof.entities.get("train", Counter())
    for code in schema.entity_names:
        if not train_ent.get(code):
            problems.append(f"entity type {code!r} has no train mention (empty type)")
    return problems
