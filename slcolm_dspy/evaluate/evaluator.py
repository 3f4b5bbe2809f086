"""`RelationEvaluator`: the one place every printed number comes from.

Construct it with the gold records and a protocol, call it with predicted records, get a flat
dict of metrics (fractions in [0, 1]) whose `primary_metric` names the headline value. The CLI,
the replay, training (dev selection) and benchmarks all call this class.

Protocols:
- `paper`: the authors' string-level matching (reference notes §5): strings in the schema's
  paper form, type words stripped, an optional allowed-entity filter, direction-insensitive types
  matched either way, duplicates counted, only types with gold in the averages, macro-F1 = harmonic
  mean of macro-P and macro-R.
- `strict`: offset-level triples with entity types, every prediction counts, macro-F1 = mean of
  per-type F1 over the types present in gold or predictions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any, Literal

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.evaluate import paper, strict
from slcolm_dspy.evaluate.metrics import Counts, MacroKind, macro, micro, per_type_rows

Protocol = Literal["paper", "strict"]
PROTOCOLS: tuple[Protocol, ...] = ("paper", "strict")
MACRO_KIND: dict[Protocol, MacroKind] = {"paper": "harmonic", "strict": "mean_f1"}


def _accumulate(total: dict[str, Counts], part: Mapping[str, Counts]) -> None:
    for key, counts in part.items():
        total.setdefault(key, Counts()).add(counts)


def summarise(
    relation_counts: Mapping[str, Counts],
    schema: Schema,
    protocol: Protocol,
    entity_counts: Mapping[str, Counts] | None = None,
) -> dict[str, Any]:
    """Turn per-type counts into the metrics dict (micro, macro, head/tail, per type, NER)."""
    order = {t: i for i, t in enumerate(schema.relation_types)}
    if protocol == "paper":
        # Only types with gold count; predictions of any other type are ignored.
        types = [t for t, c in relation_counts.items() if c.gold > 0]
    else:
        types = [t for t, c in relation_counts.items() if c.gold > 0 or c.predicted > 0]
    types.sort(key=lambda t: (order.get(t, len(order)), t))
    rows = per_type_rows(relation_counts, types)
    kind = MACRO_KIND[protocol]
    mi, ma = micro(rows), macro(rows, kind)
    result: dict[str, Any] = {
        "protocol": protocol,
        "primary_metric": RelationEvaluator.primary_metric,
        "micro_p": mi["p"],
        "micro_r": mi["r"],
        "micro_f1": mi["f1"],
        "macro_p": ma["p"],
        "macro_r": ma["r"],
        "macro_f1": ma["f1"],
        "correct": mi["correct"],
        "predicted": mi["predicted"],
        "gold": mi["gold"],
        "types": len(rows),
    }
    head = set(schema.head_types)
    for part, keep in (("head", lambda t: t in head), ("tail", lambda t: t not in head)):
        subset = {t: r for t, r in rows.items() if keep(t)}
        result[f"{part}_micro_f1"] = micro(subset)["f1"]
        result[f"{part}_macro_f1"] = macro(subset, kind)["f1"]
        result[f"{part}_types"] = len(subset)
    if entity_counts is not None:
        ner_rows = per_type_rows(entity_counts, sorted(entity_counts))
        ner = micro(ner_rows)
        result.update(ner_p=ner["p"], ner_r=ner["r"], ner_f1=ner["f1"])
    result["per_type"] = rows
    return result


def score_paper_tables(
    items: Iterable[tuple[Mapping[str, Sequence[paper.Pair]], Mapping[str, Any], Set[str] | None]],
    schema: Schema,
) -> dict[str, Any]:
    """Paper protocol over (gold pairs, predicted raw table, allowed entities) per sentence.

    The replay uses this directly: recorded LLM answers are raw tables, not records.
    """
    totals: dict[str, Counts] = {}
    n = 0
    for gold, predicted, allowed in items:
        kept = paper.filter_pairs(predicted, allowed, schema)
        _accumulate(totals, paper.count_relations(gold, kept, schema))
        n += 1
    result = summarise(totals, schema, "paper")
    result["sentences"] = n
    return result


# Ties on the primary metric are broken by micro F1: the frequent types' accuracy.
TIE_BREAK_METRIC = "micro_f1"


def ranking_key(result: Mapping[str, Any]) -> tuple[float, float]:
    """What "better" means for a metrics dict: its primary metric, then the tie-break. Every
    selection on dev (optimizer candidates, merge policies) ranks by this."""
    return (float(result[result["primary_metric"]]), float(result[TIE_BREAK_METRIC]))


class RelationEvaluator:
    """Scores predicted records against gold records under one protocol."""

    primary_metric = "macro_f1"

    def __init__(
        self,
        gold: Sequence[Sentence],
        schema: Schema,
        protocol: Protocol = "paper",
        *,
        allowed_entities: Mapping[str, Set[str]] | None = None,
        name: str = "",
    ) -> None:
        if protocol not in PROTOCOLS:
            raise SlcolmError(f"unknown protocol {protocol!r}; choose paper or strict")
        self.gold = list(gold)
        self.schema = schema
        self.protocol: Protocol = protocol
        # Paper protocol only: gold sentence id -> entity strings a predicted pair must use.
        self.allowed_entities = allowed_entities
        self.name = name

    def pair_up(self, predictions: Sequence[Sentence]) -> tuple[list[tuple[Sentence, Sentence | None]], int]:
        """Match each gold sentence with its prediction by id, else by text in any form."""
        by_id = {p.id: p for p in predictions}
        by_text: dict[str, Sentence] = {}
        for p in predictions:
            for text in (p.text, *p.variants.values()):
                by_text.setdefault(text, p)
        used: set[int] = set()
        pairs = []
        for g in self.gold:
            p = by_id.get(g.id)
            if p is None or (p.text != g.text and p.text not in g.variants.values()):
                p = next((by_text[t] for t in (g.text, *g.variants.values()) if t in by_text), None)
            if p is not None:
                used.add(id(p))
            pairs.append((g, p))
        unmatched = sum(1 for p in predictions if id(p) not in used)
        return pairs, unmatched

    def __call__(self, predictions: Sequence[Sentence]) -> dict[str, Any]:
        pairs, unmatched = self.pair_up(predictions)
        rel: dict[str, Counts] = {}
        ner: dict[str, Counts] = {}
        form = self.schema.paper.form
        for g, p in pairs:
            pred = p if p is not None else g.with_predictions((), ())
            if self.protocol == "paper":
                allowed = None
                if self.allowed_entities is not None:
                    allowed = self.allowed_entities.get(g.id, set())
                gold_pairs = paper.sentence_table(g, form)  # gold counts as annotated, unfiltered
                kept = paper.filter_pairs(paper.sentence_table(pred, form), allowed, self.schema)
                _accumulate(rel, paper.count_relations(gold_pairs, kept, self.schema))
                names = self.schema.entity_names
                _accumulate(
                    ner,
                    paper.count_entities(
                        ((names.get(e.type or "", e.type), g.span(e, form)) for e in g.entities),
                        ((names.get(e.type or "", e.type), pred.span(e, form)) for e in pred.entities),
                    ),
                )
            else:
                _accumulate(rel, strict.count_relations(g, pred, self.schema))
                _accumulate(ner, strict.count_entities(g, pred))
        result = summarise(rel, self.schema, self.protocol, ner)
        result["sentences"] = len(pairs)
        result["missing_predictions"] = sum(1 for _, p in pairs if p is None)
        result["unmatched_predictions"] = unmatched
        if self.name:
            result["name"] = self.name
        return result
