"""The guide stage offline: prompt construction, parsing, grounding, scoring, routing, retrieval,
resume. LLM answers come from DSPy's DummyLM; everything else is real (SLM, e5 embeddings, FAISS)."""

import json
import sys
import types

import dspy
import numpy as np
import pytest

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Entity, Sentence
from slcolm_dspy.guide import signatures
from slcolm_dspy.guide.adapter import CompactJSONAdapter
from slcolm_dspy.guide.choice import RoutingSettings, letter_probabilities, rotations, route, score_options
from slcolm_dspy.guide.demos import Demo, DemoRetriever
from slcolm_dspy.guide.embed import E5Embedder
from slcolm_dspy.guide.grounding import Grounder
from slcolm_dspy.guide.local_model import LOCAL_MODELS, LocalModel, assemble
from slcolm_dspy.guide.modules import GuidedExtraction, RelationChoice
from slcolm_dspy.guide.pipeline import Guide, GuideConfig, run_guide
from slcolm_dspy.slm.extractor import SpanExtractor

TEXT = "董卓以其弟旻爲左將軍"
SIMPLE = "董卓以其弟旻为左将军"


@pytest.fixture(scope="module")
def embedder():
    return E5Embedder(threads=1)


@pytest.fixture(scope="module")
def guide(schema, tiny_slm, handful, embedder):
    out, _ = tiny_slm
    return Guide(schema, SpanExtractor.load(out), embedder, handful, GuideConfig(demos=2))


def answer(relations, entities=()):
    return {"entities": list(entities), "relations": list(relations)}


def test_signatures_come_from_the_schema(schema):
    extraction = signatures.guided_extraction(schema)
    assert list(extraction.input_fields) == ["sentence", "slm_hints", "definitions", "demonstrations"]
    assert list(extraction.output_fields) == ["entities", "relations"]
    assert all(t in extraction.instructions for t in schema.relation_types)
    assert "以上都不是" in signatures.relation_choice(schema).instructions


def test_prompt_has_hints_definitions_and_demos_but_never_the_gold(schema, guide, handful):
    query = handful[0].with_predictions((), ())
    (item,) = guide.prepare([query])
    assert item.definitions and len(item.demos) == 2
    assert all(d.gold.text != query.text for d in item.demos)  # a sentence never demonstrates itself
    lm = dspy.utils.DummyLM([answer([])], adapter=CompactJSONAdapter())
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        guide.answer(item, lm)
    prompt = "\n".join(m["content"] for m in lm.history[-1]["messages"])
    assert query.variants["simplified"] in prompt  # the model-facing (simplified) form
    assert schema.definitions[item.definitions[0]] in prompt
    assert item.demos[0].gold.variants["simplified"] in prompt
    # gold appears only in the demonstrations: one gold block per demo, and the query's text once
    assert sum(line.startswith("正确关系：") for line in prompt.splitlines()) == len(item.demos)
    assert prompt.count(query.variants["simplified"]) == 1


def test_grounding_maps_filters_and_counts(schema):
    sentence = Sentence("s", TEXT, variants={"simplified": SIMPLE})
    slm = sentence.with_predictions([Entity("PER", "旻", 5, 6, 0.9)], [])
    triples = [
        {"head": "旻", "relation": "任职&爵位&谥号", "tail": "左将军"},  # simplified string, raw type name
        {"head": "人物董卓", "relation": "兄弟", "tail": "旻"},  # a type word in front
        {"head": "曹操", "relation": "父", "tail": "旻"},  # not in the sentence
        {"head": "董卓", "relation": "亲信", "tail": "旻"},  # not a type
        {"head": "旻", "relation": "任职", "tail": "左將軍"},  # duplicate of the first
        {"head": "旻", "relation": "父", "tail": "旻"},  # self loop
        "garbage",
    ]
    grounded, stats = Grounder(schema).ground(sentence, slm, [{"text": "左将军", "type": "职官"}], triples)
    assert grounded.triples() == [("任职", "旻", "左將軍"), ("兄弟", "董卓", "旻")]
    assert [(e.text, e.type, e.start) for e in grounded.entities] == [
        ("左將軍", "OFI", 7),
        ("旻", "PER", 5),
        ("董卓", None, 0),
    ]
    c = stats.counts
    assert (c["triples_in"], c["triples_kept"], c["triples_not_in_sentence"]) == (7, 2, 1)
    assert (c["relation_type_unknown"], c["relation_type_mapped"], c["triples_duplicate"]) == (1, 1, 1)
    assert (c["triples_self_loop"], c["relation_type_missing"]) == (1, 1)


def test_garbage_reply_never_crashes(schema, guide, handful):
    (item,) = guide.prepare([handful[1].with_predictions((), ())])
    lm = dspy.utils.DummyLM([{"nonsense": "x"}] * 4, adapter=CompactJSONAdapter())
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        record, meta = guide.answer(item, lm)
    assert meta["parse_error"] is True and record.relations == ()


def test_run_appends_and_resumes_without_loss_or_duplicates(schema, guide, handful, tmp_path):
    records = [h.with_predictions((), ()) for h in handful[:4]]
    lm = dspy.utils.DummyLM(
        [answer([{"head": "x", "relation": "父", "tail": "y"}])] * 20, adapter=dspy.JSONAdapter()
    )
    run_guide(guide, records, lm, tmp_path)
    path = tmp_path / "predictions.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["id"] for x in lines] == [r.id for r in records]
    path.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")  # interrupted after two
    first = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    first["total"]["cost"] = 0.25  # as if the first invocation had been priced by LiteLLM
    (tmp_path / "run.json").write_text(json.dumps(first), encoding="utf-8")
    calls_before = len(lm.history)
    result = run_guide(guide, records, lm, tmp_path)
    again = [json.loads(x)["id"] for x in path.read_text(encoding="utf-8").splitlines()]
    assert again == [r.id for r in records] and result["resumed"] == 2 and result["sentences"] == 2
    assert len(lm.history) - calls_before == 2
    run = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    assert run["prompt_chars_mean"] > 0
    assert run["total"]["cost"] == pytest.approx(0.25 + run["cost"])  # totals span invocations
    assert run["total"]["llm_calls"] == 6
    slm_ids = [json.loads(x)["id"] for x in (tmp_path / "slm.jsonl").read_text(encoding="utf-8").splitlines()]
    assert slm_ids == [r.id for r in records]  # every sentence, resumed ones included
    assert (tmp_path / "dspy_cache").is_dir()


def test_module_save_load_round_trip(schema, tmp_path):
    module = GuidedExtraction(schema)
    module.extract.demos = [
        dspy.Example(
            sentence="甲", slm_hints="", definitions="", demonstrations="", entities=[], relations=[]
        )
    ]
    # as an instruction optimizer would: the saved program's wording differs from the schema's
    tuned = "Tuned: " + module.extract.signature.instructions
    module.extract.signature = module.extract.signature.with_instructions(tuned)
    path = tmp_path / "program.json"
    module.save(str(path))
    loaded = GuidedExtraction(schema)
    assert loaded.extract.signature.instructions != tuned  # built from the schema alone
    loaded.load(str(path))
    assert loaded.extract.signature.instructions == tuned
    assert len(loaded.extract.demos) == 1 and loaded.extract.demos[0]["sentence"] == "甲"


class PositionBiasedLM:
    """Answers with log-probabilities that prefer whatever option comes first, as weak models do."""

    def __init__(self):
        self.calls = 0

    def __call__(self, prompt, **kwargs):
        assert "A. " in prompt and kwargs["logprobs"] is True
        self.calls += 1
        top = [
            {"token": "A", "logprob": np.log(0.6)},
            {"token": "B", "logprob": np.log(0.3)},
            {"token": " C", "logprob": np.log(0.1)},
        ]
        return [
            {
                "text": "A",
                "logprobs": {"content": [{"token": "A", "logprob": np.log(0.6), "top_logprobs": top}]},
            }
        ]


def test_rotations_cancel_position_bias(schema):
    lm = PositionBiasedLM()
    once = score_options(lm, schema.prompts, "选", "句", ["甲", "乙", "丙"], count=1)
    assert once.argmax() == 0 and once[0] == pytest.approx(0.6)
    spread = score_options(lm, schema.prompts, "选", "句", ["甲", "乙", "丙"], count=3)
    assert np.allclose(spread, 1 / 3)
    assert rotations(4, 2) == [[0, 1, 2, 3], [2, 3, 0, 1]]
    assert letter_probabilities({"content": []}, 3) is None  # no log-probabilities: fall back
    blank_then_b = {
        "content": [
            {"token": " ", "top_logprobs": [{"token": " ", "logprob": 0.0}]},
            {
                "token": "B",
                "top_logprobs": [
                    {"token": "B", "logprob": np.log(0.9)},
                    {"token": "A", "logprob": np.log(0.1)},
                ],
            },
        ]
    }
    assert np.allclose(letter_probabilities(blank_then_b, 2), [0.1, 0.9])
    no_letter = {"content": [{"token": "根据", "top_logprobs": [{"token": "根据", "logprob": -0.1}]}]}
    assert np.allclose(letter_probabilities(no_letter, 3), 1 / 3)  # present but silent: flat


def test_relation_choice_falls_back_to_the_generated_letter(schema):
    lm = dspy.utils.DummyLM([{"answer": "B"}])
    with dspy.context(lm=lm):
        result = RelationChoice(schema)(sentence="句", options=["甲", "乙", "以上都不是"])
    assert result.answer == "B" and result.probabilities == [0.0, 1.0, 0.0] and not result.scored


def test_routing_band_and_margin():
    types = ["父", "兄弟", "杀"]
    settings = RoutingSettings(low=0.1, high=0.9, margin=0.2, top_n=2)
    assert route(np.array([0.05, 0.01, 0.0]), types, settings) is None  # sure there is nothing
    assert route(np.array([0.95, 0.01, 0.0]), types, settings) is None  # sure of 父
    assert route(np.array([0.6, 0.3, 0.0]), types, settings) == ["父", "兄弟"]  # in the band
    assert route(np.array([0.95, 0.9, 0.0]), types, settings) == ["父", "兄弟"]  # two close types


def test_demo_retrieval_is_exact_and_never_returns_the_query(embedder, handful):
    pool = [Demo(h, None) for h in handful]
    vectors = embedder.passages([h.text for h in handful])
    retriever = DemoRetriever(pool, vectors)
    found = retriever.retrieve(
        handful[:2], embedder.queries([h.text for h in handful[:2]]), k=3, order="descending"
    )
    for query, demos in zip(handful[:2], found, strict=True):
        assert len(demos) == 3 and all(d.gold.text != query.text for d in demos)
        sims = [float(vectors[handful.index(d.gold)] @ embedder.queries([query.text])[0]) for d in demos]
        assert sims == sorted(sims, reverse=True)
    ascending = retriever.retrieve(handful[:1], embedder.queries([handful[0].text]), k=3)
    assert ascending[0] == found[0][::-1]


def test_local_model_is_verified_before_use(tmp_path, monkeypatch):
    part = tmp_path / "part1.bin"
    part.write_bytes(b"not a model")
    fake = types.ModuleType("fake_model_part1")
    fake.get_part_path = lambda: str(part)
    monkeypatch.setitem(sys.modules, "fake_model_part1", fake)
    monkeypatch.setitem(
        LOCAL_MODELS, "fake", LocalModel("fake", "test", "fake_model_part{i}", 1, "fake-part{i}", "0" * 64)
    )
    with pytest.raises(SlcolmError, match="refusing to load it"):
        assemble("fake", tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.gguf"))
    with pytest.raises(SlcolmError, match="unknown local model"):
        assemble("gpt-5", tmp_path)


def test_predicted_relations_keep_their_probability(schema, tiny_slm, handful):
    out, _ = tiny_slm
    extractor = SpanExtractor.load(out)
    ((pred, scores),) = extractor.predict_with_pair_scores(handful[:1])
    for rel in pred.relations:
        pair = next(p for p in scores if (p.head, p.tail) == (rel.head, rel.tail))
        assert pair.probabilities[schema.relation_types.index(rel.type)] == pytest.approx(
            rel.probability, abs=1e-4
        )
    # the overfitted model predicts relations, each at or above its type's threshold
    assert pred.relations
    thresholds = extractor.thresholds()
    for rel in pred.relations:
        assert rel.probability >= thresholds[extractor.labels.relation_types.index(rel.type)] - 1e-6


def test_predict_keeps_no_pair_scores_and_gives_the_same_records(tiny_slm, handful):
    """`predict` (what an SLM-only program runs over a whole book) builds no pair scores; its
    records are those of `predict_with_pair_scores`, whose relations are exactly the pairs and
    types above the thresholds."""
    extractor = SpanExtractor.load(tiny_slm[0])
    scored = extractor.predict_with_pair_scores(handful)
    assert extractor.predict(handful) == [pred for pred, _ in scored]
    thresholds = extractor.thresholds()
    for pred, scores in scored:
        above = {
            (p.head, p.tail, extractor.labels.relation_types[t])
            for p in scores
            for t in range(len(thresholds))
            if p.probabilities[t] > thresholds[t]
        }
        assert {(r.head, r.tail, r.type) for r in pred.relations} == above
    assert any(pred.relations for pred, _ in scored)


def test_guide_cli_refuses_test_demonstrations_and_bad_options(tmp_path):
    from typer.testing import CliRunner

    from slcolm_dspy.cli.app import app

    runner = CliRunner()
    refused = runner.invoke(app, ["guide", "--demo-pool", "test", "--slm", str(tmp_path)])
    assert refused.exit_code == 2 and "never come from the test split" in refused.stderr
    bad = runner.invoke(app, ["guide", "--module", "chat", "--slm", str(tmp_path)])
    assert bad.exit_code == 2 and "--module must be extract or choice" in bad.stderr


def test_compact_adapter_prompt_and_parsing(schema):
    adapter = CompactJSONAdapter()
    signature = signatures.guided_extraction(schema)
    messages = adapter.format(
        signature, [], {"sentence": "甲", "slm_hints": "", "definitions": "", "demonstrations": ""}
    )
    assert sum(len(m["content"]) for m in messages) < 600  # DSPy's JSONAdapter: ~2,200 before any input
    assert '"relations": [{"head": "…", "relation": "…", "tail": "…"}]' in messages[0]["content"]
    fenced = '```json\n{"entities": [], "relations": [{"head": "a", "relation": "父", "tail": "b"}]}\n```'
    assert adapter.parse(signature, fenced)["relations"][0].tail == "b"
    for bad in ("no json", '{"entities": []}', '{"entities": [], "relations": [{"head": "a"}]}'):
        with pytest.raises(dspy.utils.exceptions.AdapterParseError):
            adapter.parse(signature, bad)
