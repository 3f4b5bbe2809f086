import json
from collections import Counter

from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.readers import read_spert
from slcolm_dspy.evaluate.paper import sentence_table

EXPECTED = {  # sentences, chars, entities, relations (reference notes §1.2)
    "train": (3208, 111193, 20058, 7693),
    "dev": (410, 14857, 2592, 1035),
    "test": (379, 13961, 2459, 1266),
}


def test_split_counts(schema, corpus_dir):
    for split, (n, chars, ents, rels) in EXPECTED.items():
        records, report = load_split(corpus_dir, split, schema)
        assert len(records) == n
        assert sum(len(r.text) for r in records) == chars
        assert sum(len(r.entities) for r in records) == ents
        assert sum(len(r.relations) for r in records) == rels
        assert report.skipped == []
    _, test_report = load_split(corpus_dir, "test", schema)
    assert test_report.dropped_empty == 1  # the published test file's empty record
    assert test_report.label_fixes == Counter({"负面行为": 2, "其他亲属": 1})


def test_both_forms_agree_on_every_record(schema, corpus_dir):
    """Offsets and span texts hold in the traditional text and in the corpus's own simplified form."""
    for split, files in schema.corpus.splits.items():
        records, _ = load_split(corpus_dir, split, schema)
        twin = json.loads((corpus_dir / files.variant_file).read_text(encoding="utf-8"))
        twin = [t for t in twin if t["tokens"]]
        assert len(twin) == len(records)
        for rec, raw in zip(records, twin, strict=True):
            simplified = rec.variants["simplified"]
            assert simplified == raw["tokens"] and len(simplified) == len(rec.text)
            for ent, raw_ent in zip(rec.entities, raw["entities"], strict=True):
                assert rec.text[ent.start : ent.end] == ent.text == raw_ent["span"]
                assert (
                    rec.span(ent, "simplified")
                    == simplified[raw_ent.get("start", raw_ent.get("strat")) : raw_ent["end"]]
                )


def test_spert_reader_gives_the_same_annotations(schema, corpus_dir):
    dict_records, _ = load_split(corpus_dir, "dev", schema)
    spert_records, report = read_spert(corpus_dir / "chisre_train_dev.json", schema)
    assert report.skipped == []
    for a, b in zip(dict_records, spert_records, strict=True):
        assert b.text == a.variants["simplified"]
        assert [(e.start, e.end, e.type) for e in a.entities] == [
            (e.start, e.end, e.type) for e in b.entities
        ]
        assert a.relations == b.relations


def test_simplified_gold_equals_the_papers_test_gold(schema, corpus_dir, replay_pack):
    """The repo's 379 test sentences, read in their simplified form, give exactly the paper's gold."""
    records, _ = load_split(corpus_dir, "test", schema)
    ours = {r.variants["simplified"]: r for r in records}
    matched = 0
    for gold in replay_pack.test_gold:
        if gold.text not in ours:
            continue
        matched += 1
        mine = sentence_table(ours[gold.text], "simplified")
        theirs = sentence_table(gold, None)
        assert {t: Counter(v) for t, v in mine.items()} == {t: Counter(v) for t, v in theirs.items()}, (
            gold.text
        )
    assert matched == 379
