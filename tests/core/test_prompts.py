"""Prompts are data: the template follows the schema's language, a schema overrides it key by
key, a broken template is refused by name; English prompts hold no Chinese. Also the small
any-language defects: loose type names, English sentence ends, word triggers."""

from __future__ import annotations

import re

import pytest

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.text import split_sentences
from slcolm_dspy.guide import render, signatures
from slcolm_dspy.guide.adapter import CompactJSONAdapter
from slcolm_dspy.guide.choice import choice_prompt, relabel_options, verify_options
from slcolm_dspy.guide.grounding import Grounder
from slcolm_dspy.guide.triggers import mine_triggers, triggered_types

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def english_record() -> Sentence:
    text = "John Smith works for Acme Corp in Boston ."
    ents = (
        Entity("Peop", "John Smith", 0, 10, 0.9),
        Entity("Org", "Acme Corp", 21, 30, 0.8),
        Entity("Loc", "Boston", 34, 40, 0.7),
    )
    return Sentence("s1", text, ents, (Relation("Work_For", 0, 1, 0.6), Relation("OrgBased_In", 1, 2, 0.5)))


def every_prompt_text(schema, record: Sentence) -> list[str]:
    extraction = signatures.guided_extraction(schema)
    choice = signatures.relation_choice(schema)
    adapter = CompactJSONAdapter(schema.prompts)
    inputs = {
        "sentence": record.text,
        "slm_hints": render.hints_block(record, schema),
        "definitions": render.definitions_block(list(schema.relation_types), schema),
        "demonstrations": render.demonstrations_block([(record, record), (record, None)], schema),
    }
    options = relabel_options(schema, list(schema.relation_types[:2]), "A", "B")
    return [
        adapter.format_system_message(extraction),
        adapter.format_user_message_content(extraction, inputs),
        adapter.format_system_message(choice),
        choice_prompt(schema.prompts, choice.instructions, record.text, options),
        *verify_options(schema, schema.relation_types[0], "A", "B"),
        render.hints_block(None, schema),
    ]


def test_english_schema_prompts_are_english_only():
    schema = load_schema("conll04")
    assert schema.prompts.name == "en"
    texts = every_prompt_text(schema, english_record())
    for text in texts:
        assert not CJK.search(text), text
    system = texts[0]
    assert "organization" in system and "Work_For" in system and "Reply with one JSON object" in system
    assert "Work_For(John Smith -> Acme Corp, 0.60)" in texts[1]
    assert "None of the above" in texts[3]


def test_chisre_reads_the_chinese_template(schema):
    assert schema.prompts.name == "zh" and schema.prompts.domain == "古汉语"
    instructions = signatures.guided_extraction(schema).instructions
    assert (
        instructions.startswith("你是古汉语关系抽取专家") and "、".join(schema.relation_types) in instructions
    )
    assert "以上都不是" in signatures.relation_choice(schema).instructions


def write_schema(tmp_path, prompts: str):
    text = (
        '[schema]\nname = "mini"\nlanguage = "en"\n[entities]\nP = "person"\n'
        '[relations]\ntypes = ["knows"]\n' + prompts
    )
    path = tmp_path / "mini.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_schema_overrides_single_prompt_keys(tmp_path):
    path = write_schema(
        tmp_path, '[prompts]\ndomain = "Victorian letters"\n[prompts.choice]\nnone_of_these = "Neither"\n'
    )
    schema = load_schema(path)
    assert "Victorian letters" in signatures.guided_extraction(schema).instructions
    assert relabel_options(schema, ["knows"], "A", "B")[-1] == "Neither"
    assert '"Neither"' in signatures.relation_choice(schema).instructions


def test_a_template_with_a_wrong_placeholder_is_refused_by_key(tmp_path):
    path = write_schema(tmp_path, '[prompts.choice]\nholds = "{claim} is true"\n')
    with pytest.raises(SlcolmError, match=r"choice\.holds uses \{claim\}"):
        load_schema(path)
    path = write_schema(tmp_path, '[prompts]\ntemplate = "missing.toml"\n')
    with pytest.raises(SlcolmError, match="prompt template file not found"):
        load_schema(path)


def test_a_program_copy_of_the_template_reads_back_the_same(tmp_path, schema):
    from slcolm_dspy.core.prompts import load_prompt_file

    path = tmp_path / "prompts.toml"
    path.write_text(schema.prompts.as_toml(), encoding="utf-8")
    again = load_prompt_file(path)
    assert again.texts == schema.prompts.texts and again.domain == schema.prompts.domain


def test_entity_and_relation_names_match_loosely_and_unknowns_are_counted():
    schema = load_schema("conll04")
    assert schema.entity_code("Organization") == "Org" and schema.entity_code(" PERSON ") == "Peop"
    assert schema.entity_code("Vehicle") is None
    assert schema.relation_code("work_for") == "Work_For" and schema.relation_code("Live In") == "Live_In"
    record = english_record().with_predictions((), ())
    mentions = [{"text": "John Smith", "type": "Person"}, {"text": "Boston", "type": "City"}]
    triples = [{"head": "John Smith", "relation": "work for", "tail": "Acme Corp"}]
    grounded, stats = Grounder(schema).ground(record, None, mentions, triples)
    assert [(e.text, e.type) for e in grounded.entities] == [
        ("John Smith", "Peop"),
        ("Boston", None),
        ("Acme Corp", None),
    ]
    assert [r.type for r in grounded.relations] == ["Work_For"]
    assert stats.counts["entity_type_unknown"] == 1 and stats.counts["entities_untyped"] == 2


def test_english_full_stops_end_sentences_but_abbreviations_do_not():
    text = 'Mr. J. Smith of the U.S. Army arrived. He said "yes." Then 3 men left! Why? ok'
    assert [s for _, s in split_sentences(text)] == [
        "Mr. J. Smith of the U.S. Army arrived.",
        'He said "yes."',
        "Then 3 men left!",
        "Why?",
        "ok",
    ]
    assert all(text[start : start + len(s)] == s for start, s in split_sentences(text))
    assert split_sentences("甲曰：「可。」乙去！ 丙") == [(0, "甲曰：「可。」"), (7, "乙去！"), (11, "丙")]


def test_triggers_are_words_for_a_spaced_language():
    def record(i: int, text: str, rel: str | None) -> Sentence:
        words = text.split()
        ents = (
            Entity("Peop", words[0], 0, len(words[0])),
            Entity("Peop", words[-1], len(text) - len(words[-1]), len(text)),
        )
        return Sentence(f"s{i}", text, ents, (Relation(rel, 0, 1),) if rel else ())

    records = [record(i, f"Brutus{i} killed Caesar{i}", "Kill") for i in range(5)]
    records += [record(10 + i, f"Anna{i} skilled met Bob{i}", None) for i in range(5)]
    lexicon = mine_triggers(records, ["Kill"], words=True)
    assert lexicon["Kill"] and all(" " in g or g.isalpha() for g in lexicon["Kill"])
    assert "killed" in lexicon["Kill"] and not any(len(g) <= 2 for g in lexicon["Kill"])
    assert triggered_types("Cassius Killed him", lexicon, words=True) == ["Kill"]
    assert triggered_types("a skilled man", {"Kill": ["killed"]}, words=True) == []


def test_the_report_chart_names_the_types_in_their_own_script(schema):
    import xml.etree.ElementTree as ET

    from slcolm_dspy.evaluate.report import svg_chart

    per_type = {t: {"f1": 0.5, "gold": 3} for t in schema.relation_types}
    report = {
        "systems": [{"name": "SLM alone", "per_type": per_type}, {"name": "guided", "per_type": per_type}]
    }
    root = ET.fromstring(svg_chart(report, schema, ["SLM alone", "guided"]))
    ns = "{http://www.w3.org/2000/svg}"
    labels = [t.text for t in root.iter(f"{ns}text") if t.get("class") == "type"]
    assert labels == [*schema.head_types, *schema.tail_types]
    assert len([r for r in root.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]) == 2 * len(labels)
