"""The program under `dspy.Evaluate`: a per-sentence metric for Evaluate's running score, and the
corpus-level score (the evaluator's primary metric over all results) that this project reports.

DSPy averages per-example scores; relation-extraction F1 is a corpus statistic (micro counts
pooled over sentences, macro over types), so the number to trust is `corpus_score(results)`:

    result = dspy.Evaluate(devset=as_examples(dev), metric=sentence_f1(schema))(program)
    scores = corpus_score(result.results, schema)   # the RelationEvaluator's dict
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import dspy

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.evaluate import RelationEvaluator


def _pair(example: dspy.Example, prediction: Any) -> tuple[Sentence, Sentence]:
    gold: Sentence = example.record
    predicted = getattr(prediction, "record", None)
    if not isinstance(predicted, Sentence):  # a failed example: scored as predicting nothing
        predicted = gold.with_predictions((), ())
    return gold, replace(predicted, id=gold.id)


def sentence_f1(schema: Schema, protocol: str | None = None) -> Callable[..., float]:
    """A DSPy metric: the primary metric's micro F1 of one sentence (1.0 when both are empty)."""
    chosen = protocol or schema.primary_protocol

    def metric(example: dspy.Example, prediction: Any, trace: Any = None) -> float:
        gold, predicted = _pair(example, prediction)
        if not gold.relations and not predicted.relations:
            return 1.0
        return float(RelationEvaluator([gold], schema, chosen)([predicted])["micro_f1"])  # type: ignore[arg-type]

    return metric


def corpus_score(
    results: Sequence[tuple[dspy.Example, Any, Any]], schema: Schema, protocol: str | None = None
) -> dict[str, Any]:
    """The evaluator's full result over every (example, prediction, score) of `dspy.Evaluate`;
    its `primary_metric` names the headline number."""
    pairs = [_pair(example, prediction) for example, prediction, _ in results]
    evaluator = RelationEvaluator([g for g, _ in pairs], schema, protocol or schema.primary_protocol)  # type: ignore[arg-type]
    return evaluator([p for _, p in pairs])
