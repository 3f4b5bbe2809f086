"""The authors' string-level scoring protocol (reference notes §5), reproduced exactly.

It works on *pair tables*: relation type -> list of items, where an item is whatever a system
produced (for an LLM answer it may be a bare string, a 1-element list or a 3-element list). The
protocol decides which items count, so merging happens on these raw tables before filtering.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.evaluate.metrics import Counts

PairTable = dict[str, list[Any]]
Pair = tuple[str, str]


def fold_answer(relations: Any, schema: Schema) -> PairTable:
    """An LLM answer's relation object as a table under canonical names, folded as the authors did.

    For key k with canonical name n: table[n] = raw[k], replacing what was there; when k != n and
    n is itself a key of the answer, raw[n]'s items are appended after it. Order-dependent, as theirs.
    """
    if not isinstance(relations, Mapping):
        return {}
    table: PairTable = {}
    for key, value in relations.items():
        name = schema.normalise_relation(key) if isinstance(key, str) else key
        table[name] = value
        if key != name and name in relations:
            table[name] = _as_list(table[name]) + _as_list(relations[name])
    return table


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def sentence_table(sentence: Sentence, form: str | None) -> PairTable:
    """A record's relations as a pair table of strings in `form`."""
    table: PairTable = {}
    for rel_type, head, tail in sentence.triples(form):
        table.setdefault(rel_type, []).append((head, tail))
    return table


def entity_strings(sentence: Sentence, form: str | None, schema: Schema) -> set[str]:
    """The allowed-entity filter: a record's recognised (typed) mentions, minus excluded strings.

    Untyped entities are arguments a source named without recognising them as entities (the
    replay reader adds such), so they do not widen the filter.
    """
    spans = (sentence.span(e, form) for e in sentence.entities if e.type is not None)
    return {s for s in spans if not any(x in s for x in schema.paper.filter_excludes)}


def filter_pairs(table: Mapping[str, Any], allowed: Set[str] | None, schema: Schema) -> dict[str, list[Pair]]:
    """Keep items that are pairs of two different allowed strings, type words removed."""
    out: dict[str, list[Pair]] = {}
    for rel_type, items in table.items():
        kept: list[Pair] = []
        if isinstance(items, list):
            for item in items:
                if not isinstance(item, list | tuple) or len(item) < 2:
                    continue
                a, b = item[0], item[1]
                if not isinstance(a, str) or not isinstance(b, str):
                    continue
                for word in schema.paper.strip_words:
                    a = a.replace(word, "")
                    b = b.replace(word, "")
                if a != b and (allowed is None or (a in allowed and b in allowed)):
                    kept.append((a, b))
        out[rel_type] = kept
    return out


def count_relations(
    gold: Mapping[str, Sequence[Pair]], predicted: Mapping[str, Sequence[Pair]], schema: Schema
) -> dict[str, Counts]:
    """Per-type counts for one sentence: every gold occurrence checked, every kept item predicted."""
    counts: dict[str, Counts] = {}
    for rel_type, pairs in gold.items():
        c = counts.setdefault(rel_type, Counts())
        pred = set(predicted.get(rel_type, ()))
        either_way = rel_type in schema.direction_insensitive
        c.gold += len(pairs)
        for head, tail in pairs:
            if (head, tail) in pred or (either_way and (tail, head) in pred):
                c.correct += 1
    for rel_type, pairs in predicted.items():
        counts.setdefault(rel_type, Counts()).predicted += len(pairs)
    return counts


def count_entities(
    gold: Iterable[tuple[str | None, str]], predicted: Iterable[tuple[str | None, str]]
) -> dict[str, Counts]:
    """Per-type NER counts: (type, string) multisets, each gold mention matched at most once."""
    g, p = Counter(gold), Counter(predicted)
    counts: dict[str, Counts] = {}
    for (etype, _), n in g.items():
        counts.setdefault(str(etype), Counts()).gold += n
    for (etype, _), n in p.items():
        counts.setdefault(str(etype), Counts()).predicted += n
    for (etype, _), n in (g & p).items():
        counts[str(etype)].correct += n
    return counts
