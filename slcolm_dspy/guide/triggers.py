"""A trigger lexicon mined from the train split: n-grams whose presence in a sentence makes a
relation type much more likely. Used to pick the definitions an LLM is shown.

Grams are built over the language's units: characters for unsegmented scripts (Chinese), words
for space-delimited ones (lower-cased, matched on word boundaries: "killed" does not fire inside
"skilled"), so English yields "killed" and "based in", not "0t" or " k"."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from slcolm_dspy.core.records import Sentence


@dataclass(frozen=True)
class TriggerSettings:
    max_n: int = 2  # n-grams of 1..max_n characters
    min_support: int = 3  # sentences with both the n-gram and the type
    min_lift: float = 3.0  # P(type | n-gram) / P(type) ...
    min_precision: float = 0.8  # ... or P(type | n-gram): frequent types can never reach the lift
    max_inside_entities: float = 0.5  # n-grams mostly inside mentions are names, not triggers
    per_type: int = 12  # triggers kept per type


_WORD = re.compile(r"\w+(?:['’.-]\w+)*")


def _grams(text: str, max_n: int, words: bool) -> list[tuple[str, int, int]]:
    """Every n-gram (1..max_n units) of `text` with its character range."""
    if not words:
        return [(text[i : i + n], i, i + n) for n in range(1, max_n + 1) for i in range(len(text) - n + 1)]
    found = [(m.group(0).casefold(), m.start(), m.end()) for m in _WORD.finditer(text)]
    return [
        (" ".join(w for w, _, _ in found[i : i + n]), found[i][1], found[i + n - 1][2])
        for n in range(1, max_n + 1)
        for i in range(len(found) - n + 1)
    ]


def mine_triggers(
    records: Sequence[Sentence],
    relation_types: Sequence[str],
    settings: TriggerSettings = TriggerSettings(),
    *,
    words: bool = False,
) -> dict[str, list[str]]:
    """For each type, the n-grams with the most evidence (support x log lift) that pass the lift or
    the precision floor. An n-gram that contains a stronger trigger of the same type is dropped as
    redundant, and one found mostly inside entity mentions (a name) is not a trigger."""
    n = len(records)
    gram_count: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    occurrences: Counter[str] = Counter()
    joint: dict[str, Counter[str]] = {t: Counter() for t in relation_types}
    type_count: Counter[str] = Counter()
    for record in records:
        located = _grams(record.text, settings.max_n, words)
        grams = {gram for gram, _, _ in located}
        gram_count.update(grams)
        spans = [(e.start, e.end) for e in record.entities if e.grounded]
        for gram, lo, hi in located:
            occurrences[gram] += 1
            if any(s <= lo and hi <= e for s, e in spans):  # type: ignore[operator]
                inside[gram] += 1
        for rel_type in {r.type for r in record.relations}:
            if rel_type in joint:
                type_count[rel_type] += 1
                joint[rel_type].update(grams)
    lexicon: dict[str, list[str]] = {}
    for rel_type in relation_types:
        base = type_count[rel_type] / n if n else 0.0
        scored = []
        for gram, both in joint[rel_type].items():
            if both < settings.min_support or not base:
                continue
            if inside[gram] > settings.max_inside_entities * occurrences[gram]:
                continue
            precision = both / gram_count[gram]
            lift = precision / base
            if lift > 1 and (lift >= settings.min_lift or precision >= settings.min_precision):
                scored.append((both * math.log(lift), gram))
        scored.sort(key=lambda x: (-x[0], x[1]))
        kept: list[str] = []
        for _, gram in scored:
            if any(_contains(gram, k, words) for k in kept):
                continue
            kept.append(gram)
            if len(kept) == settings.per_type:
                break
        lexicon[rel_type] = kept
    return lexicon


def _contains(text: str, gram: str, words: bool) -> bool:
    if not words:
        return gram in text
    return f" {gram} " in f" {text} "


def triggered_types(text: str, lexicon: Mapping[str, Sequence[str]], *, words: bool = False) -> list[str]:
    return list(fired_triggers(text, lexicon, words=words))


def fired_triggers(text: str, lexicon: Mapping[str, Sequence[str]], *, words: bool = False) -> dict[str, str]:
    """Type -> the first of its trigger grams found in `text`, for every type that fires."""
    if words:
        text = " ".join(m.group(0).casefold() for m in _WORD.finditer(text))
    fired = {}
    for rel_type, grams in lexicon.items():
        gram = next((g for g in grams if _contains(text, g, words)), None)
        if gram is not None:
            fired[rel_type] = gram
    return fired


def coverage(
    records: Sequence[Sentence], lexicon: Mapping[str, Sequence[str]], *, words: bool = False
) -> dict[str, float]:
    """Recall of gold relation types (per sentence and type) and mean number of triggered types."""
    hit = total = 0
    triggered = 0
    for record in records:
        found = set(triggered_types(record.text, lexicon, words=words))
        triggered += len(found)
        gold = {r.type for r in record.relations}
        total += len(gold)
        hit += len(gold & found)
    return {
        "gold_type_recall": hit / total if total else 0.0,
        "mean_types": triggered / len(records) if records else 0.0,
        "sentences": len(records),
    }


def write_lexicon(
    path: Path,
    lexicon: Mapping[str, Sequence[str]],
    settings: TriggerSettings,
    measured: Mapping[str, Mapping[str, float]],
    command: str,
) -> None:
    """Write the lexicon as TOML with how it was made and what it covers (JSON strings are valid
    TOML basic strings)."""
    lines = [
        f"# Generated by `{command}` from the train split; regenerate rather than edit.",
        "",
        "[settings]",
        *(f"{k} = {json.dumps(v)}" for k, v in asdict(settings).items()),
    ]
    for split, values in measured.items():
        lines += ["", f"[coverage.{split}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
    lines += ["", "[triggers]"]
    lines += [
        f"{json.dumps(t, ensure_ascii=False)} = {json.dumps(list(g), ensure_ascii=False)}"
        for t, g in lexicon.items()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
