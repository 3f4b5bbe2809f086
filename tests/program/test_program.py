"""Compiled programs offline: merge policies, offline re-reading of LLM answers, the optimizer's
choice among planted candidates, compile -> save -> load -> extract with DummyLM, the CLI's
extract and its errors. The real local LLM runs the same loop in test_local_llm.py."""

from __future__ import annotations

import json
from dataclasses import replace

import dspy
import pytest
from program_helpers import _dummy, planted_space, save_slm_program, sentence
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.shards import DEFAULT_SHARDS, shard_of
from slcolm_dspy.data.text import read_text, split_sentences
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.guide.adapter import CompactJSONAdapter
from slcolm_dspy.guide.choice import ChoiceThresholds, RoutingSettings, apply_choices
from slcolm_dspy.guide.embed import E5Embedder
from slcolm_dspy.guide.pipeline import Guide, GuideConfig
from slcolm_dspy.merge.policy import MergePolicy, cross_fitted, learn_per_type
from slcolm_dspy.program import GuideOutcome, SLCoLMProgram, load_program, save_program
from slcolm_dspy.program.compile import dev_sample
from slcolm_dspy.program.runner import GuideRunner, run_program
from slcolm_dspy.slm.extractor import SpanExtractor
from slcolm_dspy.teleprompt import DevF1Search, as_examples

runner = CliRunner()


# ---- merge policies -------------------------------------------------------------------------
def test_per_type_policy_takes_each_type_from_the_better_source(schema):
    gold = [sentence(f"s{i}", [("父", 0, 1), ("兄弟", 2, 3)]) for i in range(4)]
    slm = [sentence(f"s{i}", [("父", 0, 1)]) for i in range(4)]  # right on 父, misses 兄弟
    llm = [sentence(f"s{i}", [("母", 0, 1), ("兄弟", 2, 3)]) for i in range(4)]  # wrong on 父, finds 兄弟
    policy = learn_per_type(gold, llm, slm, schema)
    # 父 stays with the SLM (nothing beats it); 兄弟 comes from the LLM (alone, or in the union,
    # which ties with it here and is preferred: it keeps whatever the SLM finds)
    assert policy.sources == {"兄弟": "union"}
    merged = policy.apply_all(llm, slm)
    assert all(sorted(r.triples()) == sorted(g.triples()) for r, g in zip(merged, gold, strict=True))
    assert RelationEvaluator(gold, schema, "strict")(merged)["micro_f1"] == 1.0
    # cross-fitted: each half learned on the other; the same signal in both halves gives the same
    assert [r.triples() for r in cross_fitted(gold, llm, slm, schema)] == [r.triples() for r in merged]


def test_union_wins_where_each_source_finds_half(schema):
    gold = [sentence("a", [("父", 0, 1), ("父", 2, 3)])]
    slm = [sentence("a", [("父", 0, 1)])]
    llm = [sentence("a", [("父", 2, 3)])]
    assert learn_per_type(gold, llm, slm, schema).sources == {"父": "union"}


def test_policies_round_trip_and_bad_ones_are_refused():
    for policy in (
        MergePolicy("per-type", sources={"父": "llm", "母": "union"}, rule="dev"),
        MergePolicy("mode-2", threshold=0.7),
        MergePolicy("mode-3-clean", llm_types=("父",), rule="dev_lowest_k"),
    ):
        assert MergePolicy.from_json(json.loads(json.dumps(policy.to_json()))) == policy
    with pytest.raises(SlcolmError, match="unknown merge policy"):
        MergePolicy("mode-9")
    with pytest.raises(SlcolmError, match="unknown source"):
        MergePolicy.from_json({"kind": "per-type", "sources": {"父": "gpt"}})


def test_modes_as_policies(schema):
    slm = sentence(
        "a",
        [
            (
                "父",
                0,
                1,
            ),
            ("兄弟", 2, 3),
        ],
        probability=0.6,
    )
    llm = sentence("a", [("母", 0, 1)])
    assert {r.type for r in MergePolicy("mode-1").apply(llm, slm).relations} == {"父", "兄弟", "母"}
    assert {r.type for r in MergePolicy("mode-2", threshold=0.7).apply(llm, slm).relations} == {"母"}
    clean = MergePolicy("mode-3-clean", llm_types=("母",)).apply(llm, slm)
    assert {r.type for r in clean.relations} == {"父", "兄弟", "母"}
    assert MergePolicy("slm").apply(llm, slm) is slm and MergePolicy("llm").apply(llm, slm) is llm


# ---- answers re-read offline ----------------------------------------------------------------
def test_choices_are_re_read_under_narrower_bands_and_other_thresholds():
    slm = sentence("a", [("父", 0, 1)], probability=0.55)
    decisions = [
        # relabel 0->1: the LLM prefers 母 at 0.8
        {
            "head": 0,
            "tail": 1,
            "types": ["父", "母"],
            "slm_probabilities": [0.55, 0.4],
            "kind": "relabel",
            "best": 0.55,
            "second": 0.4,
            "llm_probabilities": [0.1, 0.8, 0.1],
        },
        # relabel 2->3: "none of these" at 0.6; the SLM's best there is 0.15
        {
            "head": 2,
            "tail": 3,
            "types": ["兄弟"],
            "slm_probabilities": [0.15],
            "kind": "relabel",
            "best": 0.15,
            "second": 0.0,
            "llm_probabilities": [0.4, 0.6],
        },
    ]
    relabelled = apply_choices(slm, decisions, ChoiceThresholds(accept=0.5))
    assert [r.type for r in relabelled.relations] == ["母"]
    assert apply_choices(slm, decisions, ChoiceThresholds(accept=0.9)).relations == slm.relations
    # a band that does not route the 0.55 pair leaves it as the SLM said
    narrow = RoutingSettings(low=0.1, high=0.5, margin=0.0)
    assert apply_choices(slm, decisions, ChoiceThresholds(), narrow).relations == slm.relations


def test_llm_view_counts_the_sentences_that_reach_the_llm(schema):
    from slcolm_dspy.program.outcome import llm_view

    slm = [sentence("a", []), sentence("b", [])]
    llm = [sentence("a", [("父", 0, 1)]), sentence("b", [("父", 0, 1)])]
    # the named record a run writes now, and the positional list older runs wrote
    meta = [
        {"llm": True, "pairs": [{"head": 0, "tail": 1, "best": 0.6, "second": 0.1}]},
        {"llm": True, "pairs": [[0, 1, 0.99, 0.0]]},
    ]
    outcome = GuideOutcome(slm, llm, slm, meta, {})
    config = GuideConfig(routing=RoutingSettings(low=0.1, high=0.9, margin=0.2), route_sentences=True)
    view, share = llm_view(outcome, config)
    assert share == 0.5 and view[0] is llm[0] and view[1] is slm[1]
    assert llm_view(outcome, replace(config, route_sentences=False)) == (llm, 1.0)


# ---- the optimizer ----------------------------------------------------------------------------


def test_routed_share_needs_only_slm_scores():
    from slcolm_dspy.program.outcome import routed_share

    pairs = [[(0.6, 0.1)], [(0.95, 0.0)], [], [(0.05, 0.0), (0.3, 0.25)]]
    band = RoutingSettings(low=0.1, high=0.9, margin=0.2)
    assert routed_share(pairs, GuideConfig(module="choice", routing=band)) == 0.5
    assert routed_share(pairs, GuideConfig(module="extract", routing=band)) == 1.0  # every sentence
    assert routed_share(pairs, GuideConfig(module="extract", routing=band, route_sentences=True)) == 0.5


def test_compile_samples_dev_only_and_refuses_test_demonstrations(schema, corpus_dir, tmp_path):
    dev = load_split(corpus_dir, "dev", schema)[0]
    test = load_split(corpus_dir, "test", schema)[0]
    picked = dev_sample(dev, 50, seed=0)
    assert len(picked) == 50 and picked == dev_sample(dev, 50, seed=0)  # seeded
    assert picked != dev_sample(dev, 50, seed=1)
    order = {r.id: i for i, r in enumerate(dev)}
    assert [order[r.id] for r in picked] == sorted(order[r.id] for r in picked)  # corpus order
    # sentences without relations stay in the sample (their false positives count)
    mixed = dev + [r.with_predictions((), ()) for r in dev[:100]]
    drawn = dev_sample(mixed, 50, seed=0)
    assert any(not r.relations for r in drawn) and any(r.relations for r in drawn)
    assert dev_sample(test[:10], 50, seed=0) == test[:10]  # never more than it is given
    result = runner.invoke(app, ["compile", "--demo-pool", "test", "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "--demo-pool test is refused" in result.stderr


# ---- compile -> save -> load -> extract ----------------------------------------------------------


def test_compile_save_load_extract_round_trip(schema, tiny_slm, handful, tmp_path):
    slm_dir = tiny_slm[0]
    guide = Guide(schema, SpanExtractor.load(slm_dir), E5Embedder(threads=1), handful, GuideConfig())
    space = planted_space(prompt={"module": ["extract"], "demos": [1, 0]}, policies=["slm", "llm", "mode-1"])
    search = DevF1Search(space, GuideRunner(guide, _dummy(schema, handful), tmp_path / "work"), schema)
    compiled = search.compile(SLCoLMProgram(schema), trainset=[], valset=as_examples(handful))
    assert search.calls_used == 2 * len(handful)  # one extraction per sentence per prompt setting
    # the compiled program carries what the search saw
    assert compiled.calls_used == search.calls_used and compiled.candidates == search.candidates
    assert sum(c.chosen for c in compiled.candidates) == 1
    save_program(
        tmp_path / "prog",
        compiled,
        schema,
        lm={"model": "dummy"},
        slm_dir=slm_dir,
        retrieval={"pool_split": None, "embedder": "e5"},
        dev_metrics={"candidates": [c.to_json() for c in search.candidates]},
    )
    loaded = load_program(tmp_path / "prog")
    assert loaded.program.config == compiled.config and loaded.policy == compiled.policy
    assert loaded.program.dump_state() == compiled.dump_state()
    assert "api_key" not in (tmp_path / "prog" / "manifest.json").read_text()
    inputs = [r.with_predictions((), ()) for r in handful]
    outputs, prompts = [], []
    for name, program in (("before", compiled), ("after", loaded.program)):
        lm = _dummy(schema, handful)
        outcome, calls = run_program(program, guide, inputs, lm, tmp_path / name)
        assert calls == len(inputs)
        outputs.append([r.to_json() for r in program.policy.apply_all(outcome.llm, outcome.slm)])
        prompts.append([h["messages"] for h in lm.history])
    # DummyLM answers alike whatever it is asked: what must match is what it was asked
    assert prompts[0] == prompts[1] and len(prompts[0]) == len(inputs)
    demos = compiled.config.demos
    forms = [r.form(schema.paper.form) for r in handful]
    shown = ["\n".join(str(m.get("content")) for m in msgs) for msgs in prompts[0]]
    assert all(sum(f in p for f in forms) == 1 + demos for p in shown)  # the query and its demos
    assert outputs[0] == outputs[1]
    assert loaded.slm_dir() == slm_dir
    (slm_dir / "model.safetensors").rename(slm_dir / "moved")
    try:
        with pytest.raises(SlcolmError, match="pass --slm DIR"):
            loaded.slm_dir()
    finally:
        (slm_dir / "moved").rename(slm_dir / "model.safetensors")


def test_extract_cli_splits_text_and_grounds_triples(schema, tiny_slm, handful, tmp_path):
    slm_dir = tiny_slm[0]
    program = SLCoLMProgram(schema, GuideConfig(module="choice", demos=0), MergePolicy("slm"))
    save_program(
        tmp_path / "prog",
        program,
        schema,
        lm={"model": "local"},
        slm_dir=slm_dir,
        retrieval={"pool_split": None, "embedder": "e5"},
        dev_metrics={},
    )
    text = tmp_path / "in.txt"
    text.write_text(handful[0].text + handful[1].text + "\n\n" + handful[2].text + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["extract", "--program", str(tmp_path / "prog"), str(text), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == [handful[0].text, handful[1].text, handful[2].text]
    assert [r["id"] for r in rows] == ["in:1:1", "in:1:2", "in:3:1"]
    expected = SpanExtractor.load(slm_dir).predict(read_text(text))
    assert rows == [r.to_json() for r in expected]
    for row in rows:
        assert all(row["text"][e["start"] : e["end"]] == e["text"] for e in row["entities"])
    assert "0 LLM calls" in result.output
    # the one-call façade gives the same records for the same text
    import slcolm_dspy

    records = slcolm_dspy.extract(text.read_text(encoding="utf-8").split("\n\n"), program=tmp_path / "prog")
    assert [r.text for r in records] == [r["text"] for r in rows]
    assert [(r.entities, r.relations) for r in records] == [(e.entities, e.relations) for e in expected]


def test_program_errors_are_one_line(tmp_path, schema, tiny_slm):
    bad = runner.invoke(app, ["extract", "--program", str(tmp_path), "x.txt", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "not a compiled program: manifest.json is missing" in bad.stderr
    assert "Traceback" not in bad.output + bad.stderr
    save_program(
        tmp_path / "p",
        SLCoLMProgram(schema),
        schema,
        lm={"model": "local"},
        slm_dir=tiny_slm[0],
        retrieval={},
        dev_metrics={},
    )
    (tmp_path / "in.csv").write_text("a,b\n")
    wrong = runner.invoke(
        app, ["extract", "--program", str(tmp_path / "p"), str(tmp_path / "in.csv"), "--out", "o"]
    )
    assert wrong.exit_code == 2 and "give a .txt" in wrong.stderr
    both = runner.invoke(app, ["evaluate", "--program", str(tmp_path / "p"), "--pred", "x"])
    assert both.exit_code == 2 and "leave out --pred and --gold" in both.stderr


def test_sentence_splitting_keeps_closing_quotes():
    assert split_sentences("甲曰：「可。」乙去！ 丙") == [(0, "甲曰：「可。」"), (7, "乙去！"), (11, "丙")]
    assert split_sentences("   ") == []


def test_dspy_evaluate_runs_the_program_and_scores_the_corpus(schema, tiny_slm, handful):
    """The program is an ordinary DSPy module: dspy.Evaluate calls forward(sentence=...) on each
    example; the corpus score is the evaluator's, over all results."""
    from slcolm_dspy.program.dspy_eval import corpus_score, sentence_f1

    guide = Guide(schema, SpanExtractor.load(tiny_slm[0]), E5Embedder(threads=1), handful, GuideConfig())
    program = SLCoLMProgram(schema, GuideConfig(demos=1), MergePolicy("llm"))
    program.bind(guide)
    lm = _dummy(schema, handful)  # answers every sentence with the first sentence's gold
    with dspy.context(lm=lm, adapter=CompactJSONAdapter(schema.prompts)):
        result = dspy.Evaluate(devset=as_examples(handful), metric=sentence_f1(schema), num_threads=1)(
            program
        )
    assert len(lm.history) == len(handful)  # one extraction call per sentence
    assert [p.record.text for _, p, _ in result.results] == [h.text for h in handful]
    scores = corpus_score(result.results, schema)
    assert scores["primary_metric"] == "macro_f1" and scores["sentences"] == len(handful)
    # the first sentence is answered with its own gold: the best per-sentence score by far
    per_sentence = [score for _, _, score in result.results]
    assert per_sentence[0] >= 0.5 and per_sentence[0] == max(per_sentence)
    assert 0.0 < scores["micro_f1"] < 1.0
    slm_only = SLCoLMProgram(schema, GuideConfig(demos=0), MergePolicy("slm"))
    slm_only.bind(guide)
    before = len(lm.history)
    with dspy.context(lm=lm):
        prediction = slm_only(sentence=handful[0].text)
    assert len(lm.history) == before and prediction.record.entities == prediction.slm.entities
    with pytest.raises(SlcolmError, match="bind"):
        SLCoLMProgram(schema)(sentence="x")


def test_extract_cli_reads_an_unpunctuated_book_in_windows_without_documents(
    schema, tiny_slm, handful, tmp_path
):
    """`slcolm extract --program P BOOK.txt`: a 3,000-character line with no sentence punctuation
    is one sentence; it is read in counted windows (never sent whole, never cut silently) and
    comes back as one record whose entities lie at their offsets in it, up to its end."""
    save_slm_program(schema, tiny_slm[0], tmp_path / "prog")
    bare = "".join(c for h in handful for c in h.text if c not in "，。！？、；：「」")
    book_text = (bare * (3000 // len(bare) + 1))[:3000]
    book = tmp_path / "book.txt"
    book.write_text(book_text + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["extract", "--program", str(tmp_path / "prog"), str(book), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["id"] == "book:1:1" and row["text"] == book_text
    windows = int(result.output.split("sentences (")[1].split(" windows")[0])
    assert windows >= 3000 // 400
    found = row["entities"]
    assert found and all(book_text[e["start"] : e["end"]] == e["text"] for e in found)
    assert max(e["start"] for e in found) > 2500


def test_extract_documents_gives_one_record_per_document_with_document_offsets(
    schema, tiny_slm, handful, tmp_path
):
    """`slcolm extract --documents`: a folder of books, one of them long and unpunctuated; each
    book comes back as one record whose entities sit at their offsets in the book."""
    slm_dir = tiny_slm[0]
    save_slm_program(schema, slm_dir, tmp_path / "prog")
    books = tmp_path / "books"
    books.mkdir()
    punctuated = "".join(h.text for h in handful[:3])
    (books / "short.txt").write_text(punctuated, encoding="utf-8")
    bare = "".join(c for h in handful for c in h.text if c not in "，。！？、；：「」")
    long_text = (bare * (3000 // len(bare) + 1))[:3000]
    (books / "long.txt").write_text(long_text, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["extract", "--program", str(tmp_path / "prog"), str(books), "--out", str(out), "--documents"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert set(rows) == {"short", "long"} and rows["long"]["text"] == long_text
    assert "units (" in result.output and "cut by length" in result.output
    # the punctuated book: cut at its sentences, so each entity is the SLM's on that sentence, shifted
    extractor = SpanExtractor.load(slm_dir)
    expected, at = [], 0
    for h, predicted in zip(
        handful[:3], extractor.predict([h.with_predictions((), ()) for h in handful[:3]]), strict=True
    ):
        expected += [(e.start + at, e.end + at, e.type) for e in predicted.entities]
        at += len(h.text)
    assert [(e["start"], e["end"], e["type"]) for e in rows["short"]["entities"]] == expected
    # the long one: read in windows, every entity found lies at its offset, none twice, found to the end
    found = rows["long"]["entities"]
    assert found and all(long_text[e["start"] : e["end"]] == e["text"] for e in found)
    assert len({(e["start"], e["end"], e["type"]) for e in found}) == len(found)
    assert max(e["start"] for e in found) > 2500
    # a rerun writes nothing again; a document cut off mid-write by a crash is redone, once
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "0 documents (2 already in" in again.output
    lines = out.read_text(encoding="utf-8").splitlines()
    out.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2], encoding="utf-8")
    redone = runner.invoke(app, args)
    assert redone.exit_code == 0 and "1 documents (1 already in" in redone.output
    assert sorted(json.loads(x)["id"] for x in out.read_text(encoding="utf-8").splitlines()) == [
        "long",
        "short",
    ]
    assert not (tmp_path / "out.jsonl.run").exists()  # each batch's work is removed once written
    # --out a folder: the same records as an uninterrupted run into one file, in shards chosen by
    # document id (the redone document above was read alone: the SLM's bf16 batches can move its
    # probabilities in the last digits)
    whole = tmp_path / "whole.jsonl"
    assert runner.invoke(app, [*args[:4], "--out", str(whole), "--documents"]).exit_code == 0
    shard_dir = tmp_path / "shards"
    sharded = runner.invoke(app, [*args[:4], "--out", str(shard_dir), "--documents"])
    assert sharded.exit_code == 0, sharded.output
    by_shard = {}
    for path in shard_dir.glob("shard-*.jsonl"):
        for row in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
            assert shard_of(row["id"], DEFAULT_SHARDS) == int(path.stem.removeprefix("shard-"))
            by_shard[row["id"]] = row
    assert by_shard == {r["id"]: r for r in map(json.loads, whole.read_text(encoding="utf-8").splitlines())}
    # JSON Lines documents (id, text), and a line that is not one: one line naming file and line
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "b1", "text": long_text}) + "\n", encoding="utf-8")
    ok = runner.invoke(app, [*args[:3], str(docs), "--out", str(tmp_path / "o2.jsonl"), "--documents"])
    assert ok.exit_code == 0 and json.loads((tmp_path / "o2.jsonl").read_text(encoding="utf-8"))["id"] == "b1"
    docs.write_text(json.dumps({"id": "b1", "text": "x"}) + "\n" + json.dumps({"text": "x"}) + "\n")
    bad = runner.invoke(app, [*args[:3], str(docs), "--out", str(tmp_path / "o3.jsonl"), "--documents"])
    assert bad.exit_code == 2 and f"{docs}:2" in bad.stderr and 'needs "id" and "text"' in bad.stderr
    # the façade: the same record for the same document
    import slcolm_dspy

    (record,) = slcolm_dspy.extract(long_text, program=tmp_path / "prog", documents=True)
    assert [(e.start, e.end, e.type) for e in record.entities] == [
        (e["start"], e["end"], e["type"]) for e in found
    ]


def test_document_batches_stop_at_a_count_or_a_character_budget_and_skip_what_is_written():
    from slcolm_dspy.program.apply import StreamSummary, document_batches

    docs = [Sentence(f"d{i}", "字" * n) for i, n in enumerate([10, 10, 10, 10, 50, 200, 10, 10])]
    summary = StreamSummary()
    batches = list(document_batches(iter(docs), 3, {"d1"}, summary, max_chars=60))
    # d1 is written already; d4 would take [d2 d3] past 60; d5 is longer than the budget: alone
    assert [[d.id for d in b] for b in batches] == [["d0", "d2", "d3"], ["d4"], ["d5"], ["d6", "d7"]]
    assert summary.resumed == 1
    assert [d.id for b in batches for d in b] == [d.id for d in docs if d.id != "d1"]


def test_an_interrupted_stream_of_long_documents_keeps_every_batch_it_finished(
    schema, tiny_slm, handful, tmp_path
):
    """The character budget bounds what an interruption costs: the batches finished before it
    are on disk, and the rerun does only the rest, none twice."""
    from slcolm_dspy.program import apply

    compiled = load_program(save_slm_program(schema, tiny_slm[0], tmp_path / "prog"))
    docs = [Sentence(f"d{i}", "".join(h.text for h in handful) * 4) for i in range(4)]
    budget = 2 * len(docs[0].text)  # two documents a batch, though 64 would be allowed
    out = tmp_path / "out.jsonl"

    def interrupt(summary):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        apply.extract_document_stream(compiled, iter(docs), out, batch_chars=budget, on_document=interrupt)
    assert [json.loads(x)["id"] for x in out.read_text(encoding="utf-8").splitlines()] == ["d0", "d1"]
    rest = apply.extract_document_stream(compiled, iter(docs), out, batch_chars=budget)
    assert (rest.documents, rest.resumed) == (2, 2)
    ids = [json.loads(x)["id"] for x in out.read_text(encoding="utf-8").splitlines()]
    assert ids == ["d0", "d1", "d2", "d3"]


def test_a_guided_document_stream_opens_the_llm_once_and_not_at_all_when_all_is_written(
    schema, tiny_slm, handful, tmp_path, monkeypatch
):
    """A stream of batches talks to one LLM (a local server would start once, not per batch),
    and a rerun over a finished output starts none."""
    import contextlib

    from slcolm_dspy.program import apply

    lm = _dummy(schema, handful)
    opened = []

    @contextlib.contextmanager
    def counting_open_lm(spec, cache, *, parallel=1, log=None):
        opened.append(spec.model)
        yield lm

    monkeypatch.setattr(apply, "open_lm", counting_open_lm)
    program = SLCoLMProgram(schema, GuideConfig(module="extract", demos=0), MergePolicy("llm"))
    save_program(
        tmp_path / "prog",
        program,
        schema,
        lm={"model": "local"},
        slm_dir=tiny_slm[0],
        retrieval={},
        dev_metrics={},
    )
    compiled = load_program(tmp_path / "prog")
    docs = [Sentence(f"d{i}", h.text) for i, h in enumerate(handful[:5])]
    out = tmp_path / "out.jsonl"
    summary = apply.extract_document_stream(compiled, iter(docs), out, batch=2)
    assert opened == ["local"] and summary.documents == 5 and summary.llm_calls == len(lm.history) > 0
    assert [json.loads(x)["id"] for x in out.read_text(encoding="utf-8").splitlines()] == [d.id for d in docs]
    assert not (tmp_path / "out.jsonl.run").exists()
    again = apply.extract_document_stream(compiled, iter(docs), out, batch=2)
    assert opened == ["local"] and (again.documents, again.resumed, again.llm_calls) == (0, 5, 0)
