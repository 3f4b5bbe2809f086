from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.readers import detect_format, read_jsonl, read_records, read_spert
from slcolm_dspy.data.writers import JsonlAppender, write_jsonl


def test_jsonl_round_trip_keeps_everything(tmp_path, schema, corpus_dir):
    records, _ = load_split(corpus_dir, "dev", schema)
    path = tmp_path / "dev.jsonl"
    assert write_jsonl(records, path) == 410
    assert detect_format(path) == "jsonl"
    again, report = read_jsonl(path, schema)
    assert again == records and report.skipped == []


def test_confidences_probabilities_and_ungrounded_entities_survive(tmp_path, schema):
    sentence = Sentence(
        "s1",
        "董卓以其弟旻爲左將軍",
        (Entity("PER", "董卓", 0, 2, 0.98), Entity("PER", "旻", 5, 6), Entity("OFI", "左將軍", 7, 10, 0.5)),
        (Relation("任职", 1, 2, 0.91), Relation("兄弟", 0, 1)),
        {"simplified": "董卓以其弟旻为左将军"},
    )
    path = tmp_path / "one.jsonl"
    with JsonlAppender(path) as out:
        out.append(sentence)
    (again,), _ = read_records(path, schema)
    assert again == sentence
    assert again.triples("simplified") == [("任职", "旻", "左将军"), ("兄弟", "董卓", "旻")]


def test_spert_import_to_jsonl(tmp_path, schema, corpus_dir):
    """The SpERT importer: a SpERT list file becomes generic JSONL with the same annotations."""
    spert, _ = read_spert(corpus_dir / "chisre_test.json", schema)
    assert len(spert) == 379  # the empty record is dropped
    path = tmp_path / "test.jsonl"
    write_jsonl(spert, path)
    again, _ = read_records(path, schema)
    assert again == spert
    dict_records, _ = load_split(corpus_dir, "test", schema)
    assert [r.id for r in spert] == [r.id for r in dict_records]  # ids agree across formats
    assert detect_format(corpus_dir / "chisre_test.json") == "json-list"
    assert detect_format(corpus_dir / "test.json") == "corpus"


def test_opencc_adds_an_aligned_simplified_form(tmp_path, schema):
    from slcolm_dspy.data.variants import add_variant, aligned, opencc_converter

    convert = opencc_converter("t2s")
    text = "董卓以其弟旻爲左將軍"
    (out,) = add_variant([Sentence("a", text, (Entity("OFI", "左將軍", 7, 10),))], "simplified", convert)
    assert out.variants["simplified"] == "董卓以其弟旻为左将军"
    assert out.span(out.entities[0], "simplified") == "左将军"
    # a converter that changes length falls back to one character at a time
    assert (
        aligned("爲將", lambda s: s.replace("爲將", "为") if len(s) > 1 else {"爲": "为"}.get(s, s)) == "为將"
    )
    kept = Sentence("b", text, variants={"simplified": "x" * len(text)})
    assert add_variant([kept], "simplified", convert) == [kept]


def test_ungrounded_records_round_trip(tmp_path, schema, replay_pack):
    """Records that name entities without positions (here: the paper's SLM output) survive JSONL."""
    path = tmp_path / "slm.jsonl"
    write_jsonl(replay_pack.test_slm, path)
    again, report = read_jsonl(path, schema)
    assert again == replay_pack.test_slm and report.skipped == []
    assert any(e.type is None for r in again for e in r.entities)  # untyped relation arguments too
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "text": "董卓", "entities": [{"type": "PER"}]}', encoding="utf-8")
    _, report = read_jsonl(bad, schema, skip_bad=True)
    assert report.skipped[0].problem == "entity 0 has neither offsets nor a text"
