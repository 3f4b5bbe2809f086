"""The LLM stage as declarative DSPy modules: ordinary `dspy.Module`s whose predictors can be
inspected, optimised, saved and loaded."""

from __future__ import annotations

from typing import Any

import dspy
import numpy as np

from slcolm_dspy.core.schema import Schema
from slcolm_dspy.guide import signatures
from slcolm_dspy.guide.choice import LETTERS, options_text, score_options
from slcolm_dspy.guide.faults import reply_fields


class GuidedExtraction(dspy.Module):
    """SLCoLM: sentence + SLM hints + candidate definitions + demonstrations -> entities and
    relation triples. The route for strong LLMs."""

    def __init__(self, schema: Schema) -> None:
        super().__init__()
        self.extract = dspy.Predict(signatures.guided_extraction(schema))

    def forward(
        self,
        sentence: str,
        slm_hints: str,
        definitions: str,
        demonstrations: str,
        config: dict[str, Any] | None = None,
    ) -> dspy.Prediction:
        """`config` goes to the LM call as it is (e.g. `response_format` for JSON mode)."""
        return self.extract(
            sentence=sentence,
            slm_hints=slm_hints,
            definitions=definitions,
            demonstrations=demonstrations,
            config=dict(config or {}),
        )


class RelationChoice(dspy.Module):
    """QA4RE: pick the statement about two entities that the sentence supports, or none.

    With `lm` given and a backend that returns log-probabilities, every option gets a probability
    (averaged over rotations of the options); otherwise the generated letter decides.
    """

    def __init__(self, schema: Schema, rotations: int = 2) -> None:
        super().__init__()
        self.choose = dspy.Predict(signatures.relation_choice(schema))
        self.prompts = schema.prompts
        self.rotations = rotations

    def forward(self, sentence: str, options: list[str], lm: Any = None) -> dspy.Prediction:
        if lm is not None:
            probs = score_options(
                lm, self.prompts, self.choose.signature.instructions, sentence, options, self.rotations
            )
            if probs is not None:
                best = int(np.argmax(probs))
                return dspy.Prediction(
                    answer=LETTERS[best], probabilities=probs.tolist(), scored=True, failed=False
                )
        # a letter is all that is wanted: a short cap keeps a rambling model from costing minutes
        try:
            reply = self.choose(sentence=sentence, options=options_text(options), config={"max_tokens": 16})
            (answer,) = reply_fields(reply, "answer")
        except dspy.utils.exceptions.AdapterParseError:
            # an answer we cannot read says nothing: the decision is skipped, the SLM's stands
            return dspy.Prediction(answer="", probabilities=[], scored=False, failed=True)
        letter = str(answer or "").strip().upper()[:1]
        probs = [1.0 if LETTERS[i] == letter else 0.0 for i in range(len(options))]
        return dspy.Prediction(answer=letter, probabilities=probs, scored=False, failed=False)
