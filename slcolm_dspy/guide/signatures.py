"""DSPy signatures built from the task schema: another corpus needs only another schema file."""

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
    entity_names = "、".join(schema.entity_names.values())
    relation_names = "、".join(t for t in schema.relation_types)
    instructions = (
        "你是古汉语关系抽取专家。先看小模型对句子的预测（括号内是置信度），再参考关系定义和示例，"
        "在小模型结果上修改和补充：删去错误的三元组，补上遗漏的三元组，尤其是罕见的关系类型。"
        f"实体类型只能是：{entity_names}。关系类型只能是：{relation_names}。"
        "头实体和尾实体必须是句中原样出现的字符串。没有把握时保留小模型的高置信度结果。"
    )
    return dspy.make_signature(
        {
            "sentence": (str, dspy.InputField(desc="待抽取的句子")),
            "slm_hints": (str, dspy.InputField(desc="小模型预测的实体和关系，括号内为置信度")),
            "definitions": (str, dspy.InputField(desc="这句话可能涉及的关系类型及其定义")),
            "demonstrations": (str, dspy.InputField(desc="相似句子的示例：小模型预测与正确答案")),
            "entities": (list[Mention], dspy.OutputField(desc="句中的实体：原文字符串和实体类型")),
            "relations": (list[Triple], dspy.OutputField(desc="句中的关系三元组：头实体、关系类型、尾实体")),
        },
        instructions,
        signature_name="GuidedExtractionSignature",
    )


def relation_choice(schema: Schema) -> type[dspy.Signature]:
    instructions = (
        "根据句子判断两个实体之间的关系。从选项中选出句子所支持的那一项；"
        "如果没有一项成立，选择“以上都不是”。只回答选项字母。"
    )
    return dspy.make_signature(
        {
            "sentence": (str, dspy.InputField(desc="句子")),
            "options": (str, dspy.InputField(desc="每行一个选项：字母. 陈述")),
            "answer": (str, dspy.OutputField(desc="所选选项的字母")),
        },
        instructions,
        signature_name="RelationChoiceSignature",
    )
