"""The two protocols on small hand-made cases whose right answers are worked out by hand."""

import pytest

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.evaluate import RelationEvaluator, score_paper_tables

TEXT = "曹操與劉備交談於許"
SIMPLE = "曹操与刘备交谈于许"
E = (Entity("PER", "曹操", 0, 2), Entity("PER", "劉備", 3, 5), Entity("LOC", "許", 8, 9))


def sent(relations, entities=E, sid="s1"):
    return Sentence(sid, TEXT, tuple(entities), tuple(relations), {"simplified": SIMPLE})


def test_perfect_prediction_scores_one(schema):
    gold = [sent([Relation("交谈", 0, 1), Relation("位于", 0, 2)])]
    for protocol in ("paper", "strict"):
        result = RelationEvaluator(gold, schema, protocol)(gold)
        assert result["micro_f1"] == result["macro_f1"] == result["ner_f1"] == 1.0
        assert result["primary_metric"] == "macro_f1"


def test_paper_protocol_by_hand(schema):
    gold = [sent([Relation("交谈", 0, 1), Relation("父", 0, 1), Relation("父", 0, 1)])]
    pred = [
        sent(
            [
                Relation("交谈", 1, 0),  # direction-insensitive: right either way
                Relation("父", 1, 0),  # directed: wrong way round
                Relation("亲信", 0, 1),  # type without gold: ignored even in micro precision
            ]
        )
    ]
    r = RelationEvaluator(gold, schema, "paper")(pred)
    assert (r["correct"], r["predicted"], r["gold"]) == (1, 2, 3)
    assert r["per_type"]["交谈"]["f1"] == 1.0 and r["per_type"]["父"]["f1"] == 0.0
    assert set(r["per_type"]) == {"交谈", "父"}
    # macro = harmonic mean of mean P (0.5) and mean R (0.5)
    assert r["macro_p"] == 0.5 and r["macro_r"] == 0.5 and r["macro_f1"] == 0.5
    assert r["micro_p"] == 0.5 and r["micro_r"] == pytest.approx(1 / 3)


def test_paper_protocol_compares_simplified_strings(schema):
    gold = [sent([Relation("交谈", 0, 1)])]
    # a prediction made on the simplified text, with different ids and no offsets, still matches
    pred = [
        Sentence(
            "other-id", SIMPLE, (Entity("PER", "曹操"), Entity("PER", "刘备")), (Relation("交谈", 0, 1),)
        )
    ]
    assert RelationEvaluator(gold, schema, "paper")(pred)["micro_f1"] == 1.0


def test_paper_macro_differs_from_mean_f1(schema):
    # type A: P=1, R=1/2; type B: P=0, R=0  -> harmonic macro 2*.5*.25/.75 = 1/3; mean F1 = (2/3)/2 = 1/3 too,
    # so use a case where they differ: A P=1 R=1/4 (F1 .4), B P=1/4 R=1 (F1 .4): mean F1 .4, harmonic .625
    items = [
        (
            {"父": [("a", "b"), ("a", "c"), ("a", "d"), ("a", "e")], "杀": [("x", "y")]},
            {"父": [["a", "b"]], "杀": [["x", "y"], ["x", "z"], ["x", "w"], ["x", "v"]]},
            None,
        )
    ]
    r = score_paper_tables(items, schema)
    assert r["macro_p"] == pytest.approx(0.625) and r["macro_r"] == pytest.approx(0.625)
    assert r["macro_f1"] == pytest.approx(0.625)
    assert r["per_type"]["父"]["f1"] == pytest.approx(0.4)


def test_paper_filter_strips_type_words_and_drops_bad_items(schema):
    table = {"父": ["a", ["a"], None, ["人物a", "b", "extra"], ["a", "a"], ["a", "zzz"], [1, 2]]}
    r = score_paper_tables([({"父": [("a", "b")]}, table, {"a", "b"})], schema)
    # only ["人物a","b","extra"] survives: type word stripped, truncated to 2, both allowed
    assert (r["correct"], r["predicted"], r["gold"]) == (1, 1, 1)


def test_paper_counts_duplicates_on_both_sides(schema):
    r = score_paper_tables(
        [({"父": [("a", "b"), ("a", "b")]}, {"父": [["a", "b"], ["a", "b"], ["a", "b"]]}, None)], schema
    )
    assert (r["correct"], r["predicted"], r["gold"]) == (2, 3, 2)


def test_strict_protocol_checks_offsets_and_types(schema):
    gold = [sent([Relation("交谈", 0, 1), Relation("位于", 0, 2)])]
    wrong_type = (E[0], E[1], Entity("GPE", "許", 8, 9))
    pred = [
        sent(
            [Relation("交谈", 1, 0), Relation("位于", 0, 2), Relation("亲信", 0, 1)],
            entities=wrong_type,
        )
    ]
    r = RelationEvaluator(gold, schema, "strict")(pred)
    # 交谈 is direction-insensitive: right; 位于 has the wrong tail type; 亲信 counts as a false positive
    assert (r["correct"], r["predicted"], r["gold"]) == (1, 3, 2)
    assert set(r["per_type"]) == {"交谈", "位于", "亲信"}
    assert r["macro_f1"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert r["ner_p"] == pytest.approx(2 / 3)


def test_strict_refuses_ungrounded_entities(schema):
    gold = [sent([Relation("交谈", 0, 1)])]
    pred = [Sentence("s1", TEXT, (Entity("PER", "曹操"), Entity("PER", "劉備")), (Relation("交谈", 0, 1),))]
    with pytest.raises(SlcolmError, match="without offsets"):
        RelationEvaluator(gold, schema, "strict")(pred)


def test_missing_predictions_count_as_empty(schema):
    gold = [sent([Relation("交谈", 0, 1)]), sent([Relation("父", 0, 1)], sid="s2")]
    r = RelationEvaluator(gold, schema, "paper")([gold[0]])
    assert r["missing_predictions"] == 0  # s2 has the same text, so it pairs by text
    other = Sentence("z", "完全不同", (), ())
    r = RelationEvaluator(gold, schema, "strict")([other])
    assert r["missing_predictions"] == 2 and r["unmatched_predictions"] == 1 and r["micro_f1"] == 0.0


def test_head_and_tail_macro_use_the_schema_split(schema):
    gold = [sent([Relation("交谈", 0, 1), Relation("见面", 0, 1)])]  # head type, tail type
    pred = [sent([Relation("交谈", 0, 1)])]
    r = RelationEvaluator(gold, schema, "paper")(pred)
    assert r["head_macro_f1"] == 1.0 and r["tail_macro_f1"] == 0.0
    assert (r["head_types"], r["tail_types"]) == (1, 1)


def test_corpus_against_itself_is_perfect(schema, corpus_dir):
    records, _ = load_split(corpus_dir, "dev", schema)
    for protocol in ("paper", "strict"):
        r = RelationEvaluator(records, schema, protocol)(records)
        assert r["micro_f1"] == 1.0 and r["ner_f1"] == 1.0

    # strict counts distinct offset triples; paper counts every annotated relation
    def key(x, rel):
        a, b = (x.entities[i] for i in (rel.head, rel.tail))
        ends = [(a.start, a.end, a.type), (b.start, b.end, b.type)]
        if rel.type in schema.direction_insensitive:
            ends.sort()
        return (x.id, rel.type, *ends)

    distinct = {key(x, rel) for x in records for rel in x.relations}
    assert r["gold"] == len(distinct)
    assert RelationEvaluator(records, schema, "paper")(records)["gold"] == 1035
