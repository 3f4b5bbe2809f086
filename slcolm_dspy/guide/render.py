"""The text blocks an LLM is shown: SLM hints, candidate definitions, demonstrations.

Everything is written in the schema's model-facing form of the text (simplified Chinese for
ChisRE, as the paper did), compactly: the authors' k=2 prompts average 1,855 characters.
"""

from __future__ import annotations

from collections.abc import Sequence

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema


def text_form(schema: Schema) -> str | None:
    """The form of the text the LLM sees (the paper's form, if the schema names one)."""
    return schema.paper.form


def entity_block(sentence: Sentence, schema: Schema, *, scores: bool) -> str:
    form = text_form(schema)
    groups: dict[str, list[str]] = {}
    for ent in sentence.entities:
        name = schema.entity_names.get(ent.type or "", "其他")
        text = sentence.span(ent, form)
        groups.setdefault(name, []).append(
            f"{text}({ent.confidence:.2f})" if scores and ent.confidence is not None else text
        )
    return "；".join(f"{name}：{'、'.join(items)}" for name, items in groups.items()) or "无"


def relation_block(sentence: Sentence, schema: Schema, *, scores: bool) -> str:
    items = []
    for rel, (rel_type, head, tail) in zip(
        sentence.relations, sentence.triples(text_form(schema)), strict=True
    ):
        score = f", {rel.probability:.2f}" if scores and rel.probability is not None else ""
        items.append(f"{rel_type}({head}→{tail}{score})")
    return "；".join(items) or "无"


def hints_block(slm: Sentence | None, schema: Schema) -> str:
    if slm is None:
        return "无"
    return f"实体：{entity_block(slm, schema, scores=True)}\n关系：{relation_block(slm, schema, scores=True)}"


def definitions_block(types: Sequence[str], schema: Schema) -> str:
    return "\n".join(f"{t}：{schema.definitions.get(t, t)}" for t in types)


def demo_block(gold: Sentence, slm: Sentence | None, schema: Schema) -> str:
    lines = [f"句子：{gold.form(text_form(schema))}"]
    if slm is not None:
        lines.append(f"小模型预测：{relation_block(slm, schema, scores=True)}")
    lines.append(f"正确实体：{entity_block(gold, schema, scores=False)}")
    lines.append(f"正确关系：{relation_block(gold, schema, scores=False)}")
    return "\n".join(lines)


def demonstrations_block(demos: Sequence[tuple[Sentence, Sentence | None]], schema: Schema) -> str:
    return "\n\n".join(f"示例{i}\n{demo_block(g, s, schema)}" for i, (g, s) in enumerate(demos, 1)) or "无"
