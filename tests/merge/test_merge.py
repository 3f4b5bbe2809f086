import pytest

from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.merge import merge_records, merge_tables

LLM = {"父": [["a", "b"]], "杀": [["x", "y"]], "见面": [["m", "n"]]}
SLM = {"父": [["a", "b"], ["a", "c"]], "杀": [["x", "z"]], "任职": [["p", "q"]]}


def test_mode0_is_the_llm_alone():
    assert merge_tables(LLM, SLM, "0") == LLM


def test_mode1_appends_missing_slm_items():
    merged = merge_tables(LLM, SLM, "1")
    assert merged["父"] == [["a", "b"], ["a", "c"]]
    assert merged["杀"] == [["x", "y"], ["x", "z"]]
    assert merged["任职"] == [["p", "q"]] and merged["见面"] == [["m", "n"]]


def test_mode1_treats_tuples_and_lists_as_equal_and_keeps_junk():
    merged = merge_tables({"父": ["junk", ("a", "b")]}, {"父": [["a", "b"]]}, "1")
    assert merged["父"] == ["junk", ("a", "b")]


def test_mode3_as_the_authors_implemented_it():
    merged = merge_tables(LLM, SLM, "3", llm_types={"杀"})
    assert merged["父"] == SLM["父"]  # SLM predicted it, not in W: replaced
    assert merged["杀"] == LLM["杀"]  # in W: the LLM's, the SLM's dropped
    assert merged["见面"] == LLM["见面"]  # SLM silent: the LLM's, even outside W
    assert merged["任职"] == SLM["任职"]


def test_clean_mode3_splits_types_strictly():
    merged = merge_tables(LLM, SLM, "3-clean", llm_types={"杀", "见面"})
    assert merged == {"父": SLM["父"], "任职": SLM["任职"], "杀": LLM["杀"], "见面": LLM["见面"]}


def test_mode4_slm_wins_only_on_overlap():
    merged = merge_tables(LLM, SLM, "4")
    assert merged == {"父": SLM["父"], "杀": SLM["杀"], "见面": LLM["见面"]}


def test_merging_does_not_mutate_inputs():
    llm = {"父": [["a", "b"]]}
    merge_tables(llm, {"父": [["a", "c"]]}, "1")
    assert llm == {"父": [["a", "b"]]}


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown merge mode"):
        merge_tables(LLM, SLM, "9")  # type: ignore[arg-type]


def test_record_level_merge():
    text = "曹操殺呂布於下邳"
    cao, lu, xia = Entity("PER", "曹操", 0, 2), Entity("PER", "呂布", 3, 5), Entity("LOC", "下邳", 6, 8)
    llm = Sentence("s", text, (cao, lu), (Relation("杀", 0, 1),))
    slm = Sentence("s", text, (lu, cao, xia), (Relation("杀", 1, 0, 0.6), Relation("位于", 0, 2, 0.95)))
    union = merge_records(llm, slm, "1")
    assert union.triples() == [("杀", "曹操", "呂布"), ("位于", "呂布", "下邳")]
    assert [e.text for e in union.entities] == ["曹操", "呂布", "下邳"]
    assert union.relations[0].probability == 0.6  # the SLM's probability travels with the item
    high = merge_records(llm, slm, "2", threshold=0.9)
    assert high.triples() == union.triples()
    only_certain = merge_records(Sentence("s", text), slm, "2", threshold=0.9)
    assert only_certain.triples() == [("位于", "呂布", "下邳")]
    per_type = merge_records(llm, slm, "3-clean", llm_types={"杀"})
    assert per_type.triples() == [("位于", "呂布", "下邳"), ("杀", "曹操", "呂布")]
