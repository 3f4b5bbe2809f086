"""Gold records as examples for DSPy's own few-shot optimizers on the extraction predictor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dspy

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.guide import render
from slcolm_dspy.guide.signatures import Mention, Triple
from slcolm_dspy.guide.strategies import ExtractionStrategy
from slcolm_dspy.program.module import SLCoLMProgram

INPUTS = ("sentence", "slm_hints", "definitions", "demonstrations")
EXTRACTION = ExtractionStrategy()


def extraction_examples(
    runner: Any, program: SLCoLMProgram, records: Sequence[Sentence]
) -> list[dspy.Example]:
    """One example per gold record: the inputs the guide would build, the gold as outputs."""
    guide = program.bind(runner.guide)
    form = render.text_form(guide.schema)
    examples = []
    for gold, item in zip(records, guide.prepare([r.with_predictions((), ()) for r in records]), strict=True):
        entities = [
            Mention(text=gold.span(e, form), type=render.entity_type_name(guide.schema, e.type))
            for e in gold.entities
        ]
        relations = [Triple(head=h, relation=t, tail=tl) for t, h, tl in gold.triples(form)]
        examples.append(
            dspy.Example(
                **EXTRACTION.inputs(guide, item), entities=entities, relations=relations
            ).with_inputs(*INPUTS)
        )
    return examples


def _triples(items: Any) -> set[tuple[str, str, str]]:
    out = set()
    for t in items or []:
        get = t.get if isinstance(t, dict) else lambda k, t=t: getattr(t, k, None)
        out.add((str(get("head")), str(get("relation")), str(get("tail"))))
    return out


def triple_f1(example: dspy.Example, prediction: dspy.Prediction, trace: Any = None) -> float:
    """F1 of the predicted triples against the example's, as strings (a bootstrap metric)."""
    gold, predicted = _triples(example.relations), _triples(getattr(prediction, "relations", None))
    if not gold and not predicted:
        return 1.0
    correct = len(gold & predicted)
    if not correct:
        return 0.0
    p, r = correct / len(predicted), correct / len(gold)
    return 2 * p * r / (p + r)


def triple_feedback(
    example: dspy.Example,
    prediction: dspy.Prediction,
    trace: Any = None,
    pred_name: Any = None,
    pred_trace: Any = None,
) -> dspy.Prediction:
    """GEPA's metric: the sentence's triple F1 and, for its reflection, which triples were
    missed and which were wrong (the reflecting LLM reads these to rewrite the instruction)."""
    gold, predicted = _triples(example.relations), _triples(getattr(prediction, "relations", None))
    missed = sorted(gold - predicted)
    wrong = sorted(predicted - gold)
    lines = [
        f"missed (head, relation, tail): {missed}" if missed else "",
        f"not in the gold: {wrong}" if wrong else "",
    ]
    feedback = "\n".join(line for line in lines if line) or "all triples right"
    return dspy.Prediction(score=triple_f1(example, prediction), feedback=feedback)
