"""DSPy signatures built from the task schema: another corpus needs only another schema file.

Instructions and field labels come from the schema's prompt template (`core.prompts`); nothing
here is written in a natural language.
"""

from __future__ import annotations

import dspy
import pydantic

from slcolm_dspy.core.schema import Schema


class Mention(pydantic.BaseModel):
    text: str
    type: str


class Triple(pydantic.BaseModel):
    head: str
    relation: str
    tail: str


def guided_extraction(schema: Schema) -> type[dspy.Signature]:
    prompts = schema.prompts
    separator = prompts.text("extraction", "list_separator")
    instructions = prompts.text(
        "extraction",
        "instructions",
        domain=prompts.domain,
        entity_types=separator.join(schema.entity_names.values()),
        relation_types=separator.join(schema.relation_types),
    )

    def label(key: str) -> str:
        return prompts.text("extraction", key)

    return dspy.make_signature(
        {
            "sentence": (str, dspy.InputField(desc=label("sentence"))),
            "slm_hints": (str, dspy.InputField(desc=label("slm_hints"))),
            "definitions": (str, dspy.InputField(desc=label("definitions"))),
            "demonstrations": (str, dspy.InputField(desc=label("demonstrations"))),
            "entities": (list[Mention], dspy.OutputField(desc=label("entities"))),
            "relations": (list[Triple], dspy.OutputField(desc=label("relations"))),
        },
        instructions,
        signature_name="GuidedExtractionSignature",
    )


def relation_choice(schema: Schema) -> type[dspy.Signature]:
    prompts = schema.prompts
    instructions = prompts.text(
        "choice", "instructions", none_of_these=prompts.text("choice", "none_of_these")
    )
    return dspy.make_signature(
        {
            "sentence": (str, dspy.InputField(desc=prompts.text("choice", "sentence"))),
            "options": (str, dspy.InputField(desc=prompts.text("choice", "options"))),
            "answer": (str, dspy.OutputField(desc=prompts.text("choice", "answer"))),
        },
        instructions,
        signature_name="RelationChoiceSignature",
    )
