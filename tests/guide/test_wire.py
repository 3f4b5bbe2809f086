"""What reaches the LLM, checked on the wire: a loopback OpenAI-compatible server (tests/wire_server.py)
records every request of a real LiteLLM client. Concurrency, JSON mode, the key, retries with
backoff and Retry-After, failures recorded per sentence, a refused key stopping the run, bad
replies of both modules, a torn journal line, and Ctrl-C while a request hangs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wire_server import Reply, WireServer, chat_reply

from slcolm_dspy.guide.backends import LMSpec, build_lm
from slcolm_dspy.guide.choice import RoutingSettings
from slcolm_dspy.guide.embed import E5Embedder
from slcolm_dspy.guide.faults import LLMStopped, RetryPolicy
from slcolm_dspy.guide.pipeline import Guide, GuideConfig, run_guide
from slcolm_dspy.guide.render import text_form
from slcolm_dspy.slm.extractor import SpanExtractor

EMPTY = json.dumps({"entities": [], "relations": []})
FAST = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.5)
LETTER_A = [("A", -0.1), ("B", -2.5), ("C", -3.0), ("D", -4.0)]


def foreground() -> None:
    """In the child: Ctrl-C as in a terminal. A run started in the background (`cmd &`, some CI
    runners) inherits SIGINT ignored, and a Python started so keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def embedder():
    return E5Embedder(threads=1)


@pytest.fixture(scope="module")
def extractor(tiny_slm):
    return SpanExtractor.load(tiny_slm[0])


@pytest.fixture
def inputs(handful):
    return [h.with_predictions((), ()) for h in handful]


def make_guide(schema, extractor, embedder, **config):
    return Guide(schema, extractor, embedder, [], GuideConfig(demos=0, **config))


def choice_config(rotations: int = 1) -> dict:
    # every pair routed, so every sentence with two entities asks questions
    routing = RoutingSettings(low=0.0, high=1.01, top_n=2)
    return {"module": "choice", "routing": routing, "rotations": rotations}


def lm_for(server: WireServer, **spec):
    return build_lm(LMSpec("openai/wire", api_base=server.api_base, timeout=20, **spec))


def ids_in(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_concurrency_reaches_the_wire(schema, extractor, embedder, inputs, tmp_path):
    # each reply takes 0.4 s: with 4 threads, 4 requests are open at once
    with WireServer(lambda r, n: Reply(body=chat_reply(EMPTY).body, delay=0.4)) as server:
        guide = make_guide(schema, extractor, embedder)
        result = run_guide(guide, inputs, lm_for(server), tmp_path, concurrency=4)
    assert result["sentences"] == len(inputs) and result["failed"] == 0
    assert server.max_in_flight == 4


def test_one_request_at_a_time_by_default(schema, extractor, embedder, inputs, tmp_path):
    with WireServer(lambda r, n: Reply(body=chat_reply(EMPTY).body, delay=0.1)) as server:
        run_guide(make_guide(schema, extractor, embedder), inputs[:3], lm_for(server), tmp_path)
    assert len(server.requests) == 3 and server.max_in_flight == 1


def test_answers_from_the_cache_are_counted_as_cached_with_no_tokens_or_cost(
    schema, extractor, embedder, inputs, tmp_path
):
    """The same sentence twice under two ids: one request reaches the wire, the second answer
    comes from DSPy's cache and is counted as cached, with no tokens and no cost."""
    twin = [inputs[0], dataclasses.replace(inputs[0], id=inputs[0].id + "-again")]
    with WireServer(lambda r, n: chat_reply(EMPTY)) as server:
        result = run_guide(make_guide(schema, extractor, embedder), twin, lm_for(server), tmp_path)
    assert len(server.requests) == 1
    assert (result["llm_calls"], result["cached_calls"]) == (2, 1)
    assert (result["prompt_tokens"], result["completion_tokens"]) == (10, 2)  # one reply's usage


@pytest.mark.parametrize("json_mode", [True, False])
def test_json_mode_is_sent_only_when_on(schema, extractor, embedder, inputs, tmp_path, json_mode):
    with WireServer(lambda r, n: chat_reply(EMPTY)) as server:
        guide = make_guide(schema, extractor, embedder, json_mode=json_mode)
        run_guide(guide, inputs[:2], lm_for(server), tmp_path)
    formats = [r.body.get("response_format") for r in server.requests]
    assert formats == ([{"type": "json_object"}] * 2 if json_mode else [None] * 2)
    assert all(r.body["max_tokens"] == 768 and r.body["temperature"] == 0.0 for r in server.requests)


def test_the_key_from_the_environment_is_sent_and_written_nowhere(
    schema, extractor, embedder, inputs, tmp_path, monkeypatch
):
    secret = "sk-wire-test-8c41f0d2e9"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with WireServer(lambda r, n: chat_reply(EMPTY)) as server:
        run_guide(make_guide(schema, extractor, embedder), inputs[:2], lm_for(server), tmp_path / "run")
    assert [r.headers.get("authorization") for r in server.requests] == [f"Bearer {secret}"] * 2
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "predictions.jsonl" for p in written) and any("cache" in str(p) for p in written)
    assert not [p for p in written if secret.encode() in p.read_bytes()]


def test_5xx_is_retried_then_recorded_as_failed_and_the_rerun_asks_only_for_it(
    schema, extractor, embedder, inputs, tmp_path
):
    sick = inputs[1].form(text_form(schema))  # the form the prompt shows (simplified for ChisRE)
    healthy = True

    def script(request, n):
        if sick in request.prompt and healthy:
            return Reply(status=500, body={"error": {"message": "boom", "type": "server_error"}})
        return chat_reply(EMPTY)

    guide = make_guide(schema, extractor, embedder)
    with WireServer(script) as server:
        result = run_guide(guide, inputs[:3], lm_for(server), tmp_path, retry=FAST)
        asked = [r for r in server.requests if sick in r.prompt]
        assert len(asked) == 3  # one try and two retries: no second retry layer inside LiteLLM
        assert result["failed"] == 1 and result["sentences"] == 3 and "HTTP 500" in str(result["failures"])
        lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text("utf-8").splitlines()]
        failed = [x for x in lines if x["guide"].get("failed")]
        assert [x["id"] for x in failed] == [inputs[1].id]
        healthy = False
        before = len(server.requests)
        again = run_guide(guide, inputs[:3], lm_for(server), tmp_path, retry=FAST)
        assert len(server.requests) - before == 1 and sick in server.requests[-1].prompt
    assert again["resumed"] == 2 and again["failed"] == 0
    assert sorted(ids_in(tmp_path / "predictions.jsonl")) == sorted(r.id for r in inputs[:3])


def test_429_waits_as_retry_after_says(schema, extractor, embedder, inputs, tmp_path):
    def script(request, n):
        if n == 0:
            return Reply(status=429, body={"error": {"message": "slow down"}}, headers={"Retry-After": "0.6"})
        return chat_reply(EMPTY)

    with WireServer(script) as server:
        retry = RetryPolicy(retries=2, base_delay=0.01, max_delay=5)
        result = run_guide(
            make_guide(schema, extractor, embedder), inputs[:1], lm_for(server), tmp_path, retry=retry
        )
    first, second = server.requests[:2]
    assert result["failed"] == 0 and len(server.requests) == 2
    assert second.arrived - first.finished >= 0.55  # our base delay alone would be 0.01 s


@pytest.mark.parametrize("status", [401, 400])
def test_a_refused_key_or_request_stops_at_once(schema, extractor, embedder, inputs, tmp_path, status):
    refuse = Reply(status=status, body={"error": {"message": "no"}})
    with WireServer(lambda r, n: refuse) as server, pytest.raises(LLMStopped, match=f"HTTP {status}"):
        run_guide(make_guide(schema, extractor, embedder), inputs[:3], lm_for(server), tmp_path, retry=FAST)
    assert len(server.requests) == 1  # not retried, and no other sentence asked


FAULTS = {
    "http-500": Reply(status=500, body={"error": {"message": "x"}}),
    "http-503": Reply(status=503, body=b"<html>down</html>"),
    "http-429": Reply(status=429, body={"error": {"message": "x"}}),
    "closed": Reply(fault="close"),
    "truncated": Reply(fault="truncate", body=chat_reply(EMPTY).body),
    "no-choices": Reply(body={"id": "x", "object": "chat.completion", "model": "wire"}),
    "empty-choices": Reply(body={"id": "x", "object": "chat.completion", "model": "wire", "choices": []}),
    "not-json": Reply(body=b"this is not json"),
}


@pytest.mark.parametrize("module", ["extract", "choice"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_transport_faults_are_failed_sentences_not_crashes(
    schema, extractor, embedder, inputs, tmp_path, module, fault
):
    config = choice_config() if module == "choice" else {}
    guide = make_guide(schema, extractor, embedder, **config)
    with WireServer(lambda r, n: FAULTS[fault]) as server:
        result = run_guide(guide, inputs[:2], lm_for(server), tmp_path, retry=RetryPolicy(1, 0.0, 0.0))
    asked = result["llm_sentences"] + result["failed"]
    assert result["sentences"] == 2 and asked >= 1
    assert result["failed"] >= 1 and len(server.requests) >= 2  # retried once, then given up
    slm = {r.id: r for r in extractor.predict(inputs[:2])}
    for line in (tmp_path / "predictions.jsonl").read_text("utf-8").splitlines():
        blob = json.loads(line)
        if blob["guide"].get("failed"):  # the SLM's record stands for a failed sentence
            assert [r["type"] for r in blob["relations"]] == [r.type for r in slm[blob["id"]].relations]


BAD_CONTENT = {
    "prose": "I think the answer is probably the first one",
    "empty": "",
    "null": None,
    "json-array": "[1, 2, 3]",
    "wrong-types": json.dumps({"entities": 5, "relations": "none"}),
    "answer-number": json.dumps({"answer": 7}),
}


@pytest.mark.parametrize("module", ["extract", "choice"])
@pytest.mark.parametrize("content", sorted(BAD_CONTENT))
def test_bad_content_never_crashes_either_module(
    schema, extractor, embedder, inputs, tmp_path, module, content
):
    config = choice_config() if module == "choice" else {}
    guide = make_guide(schema, extractor, embedder, **config)
    with WireServer(lambda r, n: chat_reply(BAD_CONTENT[content])) as server:
        result = run_guide(guide, inputs[:2], lm_for(server), tmp_path, retry=FAST)
    assert result["sentences"] == 2 and result["failed"] == 0 and server.requests
    slm = {r.id: r for r in extractor.predict(inputs[:2])}
    lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text("utf-8").splitlines()]
    assert sorted(b["id"] for b in lines) == sorted(r.id for r in inputs[:2])
    choices = [c for blob in lines for c in blob["guide"].get("choices", [])]
    if module == "choice":
        assert choices and result["routed_pairs"] > 0  # questions were asked ...
    for blob in lines:
        text = blob["text"]
        # ... and whatever came back, every kept entity is grounded in its sentence
        assert all(text[e["start"] : e["end"]] == e["text"] for e in blob["entities"] if "start" in e)
        if module == "choice":  # unreadable answers change nothing: the SLM's record
            assert [r["type"] for r in blob["relations"]] == [r.type for r in slm[blob["id"]].relations]
    assert all(c.get("failed") or c["llm_probabilities"] for c in choices)


def test_choice_scores_letters_from_logprobs_on_the_wire(schema, extractor, embedder, inputs, tmp_path):
    guide = make_guide(schema, extractor, embedder, **choice_config(rotations=2))
    with WireServer(lambda r, n: chat_reply("A", logprobs=LETTER_A)) as server:
        result = run_guide(guide, inputs[:2], lm_for(server), tmp_path)
    assert result["llm_calls"] == len(server.requests) > 0
    assert all(r.body.get("logprobs") is True and r.body.get("top_logprobs") == 10 for r in server.requests)
    choices = [
        c
        for x in (tmp_path / "predictions.jsonl").read_text("utf-8").splitlines()
        for c in json.loads(x)["guide"]["choices"]
    ]
    assert choices and all(c["scored"] for c in choices)


def test_a_torn_last_line_is_dropped_and_redone(schema, extractor, embedder, inputs, tmp_path):
    guide = make_guide(schema, extractor, embedder)
    with WireServer(lambda r, n: chat_reply(EMPTY)) as server:
        run_guide(guide, inputs[:3], lm_for(server), tmp_path)
        path = tmp_path / "predictions.jsonl"
        lines = path.read_bytes().splitlines(keepends=True)
        torn = lines[2][: lines[2].index("人".encode()) + 1] if "人".encode() in lines[2] else lines[2][:-20]
        path.write_bytes(lines[0] + lines[1] + torn)  # a crash in the middle of the third record
        before = len(server.requests)
        again = run_guide(guide, inputs[:3], lm_for(server), tmp_path)
        assert len(server.requests) - before == 0  # the answer comes from the run's disk cache
    assert again["resumed"] == 2 and again["sentences"] == 1
    assert ids_in(path) == [r.id for r in inputs[:3]]


def test_a_resumed_sentence_is_prepared_in_the_batches_of_the_whole_run(schema, extractor, embedder, inputs):
    # on a machine whose kernels shift a probability with a batch's padding, the sentence read
    # alone would get other hints, so another prompt, and miss the run's cache
    guide = make_guide(schema, extractor, embedder)
    whole = guide.prepare(inputs)
    rest = guide.prepare(inputs[2:], batch_with=inputs)
    assert [p.record.id for p in rest] == [r.id for r in inputs[2:]]
    for a, b in zip(whole[2:], rest, strict=True):
        assert a.slm == b.slm and a.definitions == b.definitions
        assert [(s.head, s.tail, s.probabilities.tolist()) for s in a.pair_scores] == [
            (s.head, s.tail, s.probabilities.tolist()) for s in b.pair_scores
        ]


def test_ctrl_c_stops_a_guide_run_while_a_request_hangs(tiny_slm, corpus_dir, tmp_path):
    out = tmp_path / "run"
    with WireServer(lambda r, n: Reply(body=chat_reply(EMPTY).body, delay=600)) as server:
        env = {**os.environ, "OPENAI_API_KEY": "sk-wire-ctrl-c"}
        command = [
            str(Path(sys.executable).with_name("slcolm")), "guide", "--split", "dev", "--limit", "3",
            "--lm", "openai/wire", "--api-base", server.api_base, "--slm", str(tiny_slm[0]),
            "--demos", "0", "--out", str(out), "--data", str(corpus_dir),
        ]  # fmt: skip
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=foreground)
        deadline = time.monotonic() + 120
        while not server.requests and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert server.requests, "the run never reached the LLM"
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=15)
        finally:
            process.kill()
        stopped_after = time.monotonic() - sent
    assert process.returncode == 130 and stopped_after < 15
    assert "resume" in err and "Traceback" not in err


def test_evaluate_asks_the_llm_only_for_what_the_policy_routes(schema, tiny_slm, corpus_dir, tmp_path):
    """A program whose policy is the SLM alone costs no call; `--compare` adds the guided run.
    The program was compiled for the local LLM; `--lm/--api-base` run it against another backend."""
    from typer.testing import CliRunner

    from slcolm_dspy.cli.app import app
    from slcolm_dspy.merge.policy import MergePolicy
    from slcolm_dspy.program.artifact import save_program
    from slcolm_dspy.program.module import SLCoLMProgram

    program = SLCoLMProgram(schema, GuideConfig(**choice_config(), demos=0), MergePolicy("slm"))
    prog = tmp_path / "program"
    save_program(
        prog, program, schema, lm={"model": "local"}, slm_dir=tiny_slm[0], retrieval={}, dev_metrics={}
    )
    runner = CliRunner()
    with WireServer(lambda r, n: chat_reply("A", logprobs=LETTER_A)) as server:
        common = ["--split", "test", "--limit", "3", "--data", str(corpus_dir), "--lm", "openai/wire",
                  "--api-base", server.api_base]  # fmt: skip
        lean = runner.invoke(app, ["evaluate", "--program", str(prog), *common])
        assert lean.exit_code == 0, lean.output
        assert server.requests == [] and "no LLM call" in lean.output
        report = json.loads((prog / "eval-test-first3" / "report.json").read_text("utf-8"))
        assert [s["name"] for s in report["systems"]] == ["SLM alone", "compiled: slm"]
        full = runner.invoke(app, ["evaluate", "--program", str(prog), *common, "--compare"])
        assert full.exit_code == 0, full.output
        assert len(server.requests) > 0 and all(r.path == "/v1/chat/completions" for r in server.requests)
    report = json.loads((prog / "eval-test-first3" / "report.json").read_text("utf-8"))
    assert "LLM (guided, routed)" in [s["name"] for s in report["systems"]]
