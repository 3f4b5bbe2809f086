"""End to end with a real LLM: the embedded llama.cpp server on loopback serving the verified
Qwen2.5-Coder-0.5B, reached through LiteLLM, running both guide modules on 3 test sentences."""

import json

import pytest

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.readers import read_jsonl
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.guide.backends import LMSpec, open_lm
from slcolm_dspy.guide.choice import RoutingSettings
from slcolm_dspy.guide.embed import E5Embedder
from slcolm_dspy.guide.pipeline import Guide, GuideConfig, run_guide
from slcolm_dspy.guide.server import LocalServer
from slcolm_dspy.slm.extractor import SpanExtractor

pytest.importorskip("xllamacpp")


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    cache = tmp_path_factory.mktemp("llm-cache")
    with open_lm(LMSpec("local", max_tokens=384), cache, log=cache / "server.log") as model:
        yield model


@pytest.fixture(scope="module")
def three(schema, corpus_dir):
    test, _ = load_split(corpus_dir, "test", schema)
    short = [t for t in test if len(t.text) <= 30 and t.relations][:3]
    return short, [t.with_predictions((), ()) for t in short]


def test_guided_extraction_end_to_end(schema, tiny_slm, handful, lm, three, tmp_path):
    gold, inputs = three
    guide = Guide(
        schema, SpanExtractor.load(tiny_slm[0]), E5Embedder(threads=1), handful, GuideConfig(demos=1)
    )
    result = run_guide(guide, inputs, lm, tmp_path / "extract")
    assert result["sentences"] == 3 and result["llm_calls"] >= 3
    assert result["prompt_tokens"] > 0 and result["prompt_chars_mean"] > 0
    predictions, report = read_jsonl(tmp_path / "extract" / "predictions.jsonl", schema)
    assert report.skipped == [] and [p.id for p in predictions] == [g.id for g in gold]
    for p in predictions:  # every output is grounded in its own sentence
        assert all(e.grounded and p.text[e.start : e.end] == e.text for e in p.entities)
    RelationEvaluator(gold, schema, "strict")(predictions)  # scoreable with offsets


def test_relation_choice_end_to_end_with_logprobs(schema, tiny_slm, lm, three, tmp_path):
    _, inputs = three
    config = GuideConfig(module="choice", demos=0, routing=RoutingSettings(low=0.0, high=1.01, top_n=2))
    guide = Guide(schema, SpanExtractor.load(tiny_slm[0]), E5Embedder(threads=1), [], config)
    result = run_guide(guide, inputs, lm, tmp_path / "choice")
    assert result["routed_pairs"] > 0 and result["llm_calls"] > 0
    lines = [
        json.loads(x) for x in (tmp_path / "choice" / "predictions.jsonl").read_text("utf-8").splitlines()
    ]
    choices = [c for line in lines for c in line["guide"]["choices"]]
    assert choices and all(c["scored"] for c in choices)  # llama.cpp returns log-probabilities
    for c in choices:
        assert sum(c["llm_probabilities"]) == pytest.approx(1.0, abs=1e-6)


def test_server_is_gone_after_use(tmp_path):
    with pytest.raises(SlcolmError, match="exited"):
        LocalServer(tmp_path / "missing.gguf", ready_timeout=30).start()
