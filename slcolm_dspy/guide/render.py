"""The text blocks an LLM is shown: SLM hints, candidate definitions, demonstrations.

Everything is written in the schema's model-facing form of the text (simplified Chinese for
ChisRE, as the paper did), compactly (the authors' k=2 prompts average 1,855 characters), with
the words and punctuation of the schema's prompt template (`[render]`).
"""

from __future__ import annotations

from collections.abc import Sequence

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema


def text_form(schema: Schema) -> str | None:
    """The form of the text the LLM sees (the paper's form, if the schema names one)."""
    return schema.paper.form


def _t(schema: Schema, key: str, **values: object) -> str:
    return schema.prompts.text("render", key, **values)


def entity_type_name(schema: Schema, code: str | None) -> str:
    """The display name the LLM reads for an entity type (the template's "other" if untyped)."""
    return schema.entity_names.get(code or "", _t(schema, "other_type"))


def entity_block(sentence: Sentence, schema: Schema, *, scores: bool) -> str:
    form = text_form(schema)
    groups: dict[str, list[str]] = {}
    for ent in sentence.entities:
        text = sentence.span(ent, form)
        if scores and ent.confidence is not None:
            text = _t(schema, "entity_score", text=text, score=f"{ent.confidence:.2f}")
        groups.setdefault(entity_type_name(schema, ent.type), []).append(text)
    items = _t(schema, "item_separator")
    return _t(schema, "group_separator").join(
        _t(schema, "entity_group", type=name, items=items.join(texts)) for name, texts in groups.items()
    ) or _t(schema, "none")


def relation_block(sentence: Sentence, schema: Schema, *, scores: bool) -> str:
    items = []
    for rel, (rel_type, head, tail) in zip(
        sentence.relations, sentence.triples(text_form(schema)), strict=True
    ):
        if scores and rel.probability is not None:
            items.append(
                _t(
                    schema,
                    "relation_score",
                    type=rel_type,
                    head=head,
                    tail=tail,
                    score=f"{rel.probability:.2f}",
                )
            )
        else:
            items.append(_t(schema, "relation", type=rel_type, head=head, tail=tail))
    return _t(schema, "group_separator").join(items) or _t(schema, "none")


def hints_block(slm: Sentence | None, schema: Schema) -> str:
    if slm is None:
        return _t(schema, "none")
    return _t(
        schema,
        "hints",
        entities=entity_block(slm, schema, scores=True),
        relations=relation_block(slm, schema, scores=True),
    )


def definition_line(rel_type: str, schema: Schema) -> str:
    return _t(schema, "definition", type=rel_type, definition=schema.definitions.get(rel_type, rel_type))


def definitions_block(types: Sequence[str], schema: Schema) -> str:
    return "\n".join(definition_line(t, schema) for t in types)


def demo_block(gold: Sentence, slm: Sentence | None, schema: Schema) -> str:
    lines = [_t(schema, "demo_sentence", sentence=gold.form(text_form(schema)))]
    if slm is not None:
        lines.append(_t(schema, "demo_slm", relations=relation_block(slm, schema, scores=True)))
    lines.append(_t(schema, "demo_gold_entities", entities=entity_block(gold, schema, scores=False)))
    lines.append(_t(schema, "demo_gold_relations", relations=relation_block(gold, schema, scores=False)))
    return "\n".join(lines)


def demonstrations_block(demos: Sequence[tuple[Sentence, Sentence | None]], schema: Schema) -> str:
    return "\n\n".join(
        f"{_t(schema, 'demo_title', n=i)}\n{demo_block(g, s, schema)}" for i, (g, s) in enumerate(demos, 1)
    ) or _t(schema, "none")
