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
# These start the real local LLM (llama.cpp on loopback); they run in CI too (`-m "not local_llm"`
# leaves them out locally).
pytestmark = pytest.mark.local_llm


@pytest.fixture(scope="module")
def llm_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("llm-cache")


@pytest.fixture(scope="module")
def lm(llm_cache):
    with open_lm(LMSpec("local", max_tokens=384), llm_cache, log=llm_cache / "server.log") as model:
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
    scores = RelationEvaluator(gold, schema, "strict")(predictions)  # scoreable with offsets
    assert scores["sentences"] == 3 and scores["missing_predictions"] == 0
    assert 0.0 <= scores["micro_f1"] <= 1.0


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


def test_a_server_that_cannot_start_says_so(tmp_path):
    with pytest.raises(SlcolmError, match="exited"):
        LocalServer(tmp_path / "missing.gguf", ready_timeout=30).start()


def test_server_is_gone_after_use(llm_cache, tmp_path):
    """Leaving the block stops the process and frees the port: nothing keeps serving."""
    import socket
    import urllib.request

    from slcolm_dspy.guide.local_model import DEFAULT_LOCAL_MODEL, assemble

    gguf = assemble(DEFAULT_LOCAL_MODEL, llm_cache / "models")  # assembled once per module
    with LocalServer(gguf, log=tmp_path / "server.log") as server:
        process, port = server.process, server.port
        with urllib.request.urlopen(f"{server.api_base}/models", timeout=30) as reply:
            assert reply.status == 200
    assert process.poll() is not None  # exited
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nobody listens any more


def test_server_stops_when_its_parent_is_killed(llm_cache, tmp_path):
    """A parent killed with SIGKILL (as Ray ends a pool's actors) runs no exit code: the server
    notices it was orphaned and stops, so no llama.cpp process outlives the run."""
    import signal
    import subprocess
    import sys
    import time

    from slcolm_dspy.guide.local_model import DEFAULT_LOCAL_MODEL, assemble

    gguf = assemble(DEFAULT_LOCAL_MODEL, llm_cache / "models")
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from slcolm_dspy.guide.server import LocalServer;"
            " s = LocalServer(Path(sys.argv[1])).start(); print(s.process.pid, flush=True); time.sleep(600)",
            str(gguf),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    server_pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(server_pid):
        time.sleep(0.2)
    assert not _alive(server_pid), "the server outlived its killed parent"


def test_sigterm_stops_the_server_mid_request_and_the_request_gives_up(llm_cache, tmp_path):
    """SIGTERM while a long reply is being generated: llama.cpp's clean-up waits on the request
    and would hang; the server exits within its grace period, and the client waiting on the
    reply gets a closed connection at once instead of waiting out its timeout."""
    import signal
    import threading
    import time
    import urllib.request

    from slcolm_dspy.guide.local_model import DEFAULT_LOCAL_MODEL, assemble
    from slcolm_dspy.guide.server import STOP_GRACE

    gguf = assemble(DEFAULT_LOCAL_MODEL, llm_cache / "models")
    # ignore_eos (llama.cpp): the reply runs to max_tokens, minutes on a CPU
    body = {
        "model": "local",
        "max_tokens": 4000,
        "ignore_eos": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    outcome: dict[str, object] = {}

    def ask(api_base: str) -> None:
        request = urllib.request.Request(
            f"{api_base}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                outcome["status"] = reply.status
        except Exception as exc:  # a closed connection, as the test wants
            outcome["error"] = type(exc).__name__
        outcome["ended"] = time.monotonic()

    with LocalServer(gguf, log=tmp_path / "server.log") as server:
        client = threading.Thread(target=ask, args=(server.api_base,), daemon=True)
        client.start()
        time.sleep(2.0)  # the reply is being generated
        assert "ended" not in outcome
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=STOP_GRACE + 10)
        client.join(timeout=10)
    assert not client.is_alive() and "error" in outcome, outcome
    assert outcome["ended"] - sent < STOP_GRACE + 10


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:  # an exited child of a dead parent is reaped by init; a zombie counts as gone
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_compile_evaluate_extract_with_the_local_llm(schema, tiny_slm, corpus_dir, tmp_path, monkeypatch):
    """The whole CLI loop on a real LLM; the compile step reads dev (and train counts), never test."""
    from typer.testing import CliRunner

    import slcolm_dspy.program.compile as compile_module
    from slcolm_dspy.cli.app import app

    read: list[str] = []
    real = compile_module.load_split

    def spy(data_dir, split, *args, **kwargs):
        read.append(split)
        return real(data_dir, split, *args, **kwargs)

    monkeypatch.setattr(compile_module, "load_split", spy)
    runner = CliRunner()
    prog = tmp_path / "prog"
    common = ["--data", str(corpus_dir)]
    # the local preset, with a band that routes every pair the tiny SLM finds
    preset = tmp_path / "wide.toml"
    preset.write_text(
        "[search]\nsample = 4\nbudget_calls = 200\nmax_llm_share = 1.0\ntop_n = 2\n"
        '[prompt]\nmodule = ["choice"]\nrotations = [1]\n'
        "[routing]\nlow = [0.0, 0.2]\nhigh = [1.01]\nmargin = [0.2]\n",
        encoding="utf-8",
    )
    compiled = runner.invoke(
        app,
        [
            "compile",
            "--lm",
            "local",
            "--slm",
            str(tiny_slm[0]),
            "--out",
            str(prog),
            "--preset",
            str(preset),
            *common,
        ],
    )
    assert compiled.exit_code == 0, compiled.output + compiled.stderr
    assert "test" not in read and "dev" in read
    assert "candidates" in compiled.output and (prog / "manifest.json").is_file()
    manifest = json.loads((prog / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["llm_calls"] > 0 and manifest["lm"]["model"] == "local"
    dev_ids = {r.id for r in load_split(corpus_dir, "dev", schema)[0]}
    assert set(json.loads((prog / "dev_metrics.json").read_text(encoding="utf-8"))["sample"]) <= dev_ids

    evaluated = runner.invoke(
        app, ["evaluate", "--program", str(prog), "--split", "test", "--limit", "2", *common]
    )
    assert evaluated.exit_code == 0, evaluated.output + evaluated.stderr
    report_dir = prog / "eval-test-first2"
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    names = [s["name"] for s in report["systems"]]
    assert names[0] == "SLM alone" and names[-1].startswith("compiled:") and report["sentences"] == 2
    assert (report_dir / "per_type_f1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in (report_dir / "report.html").read_text(encoding="utf-8")
    again = runner.invoke(
        app, ["evaluate", "--program", str(prog), "--split", "test", "--limit", "2", *common]
    )
    assert again.exit_code == 0 and json.loads((report_dir / "report.json").read_text("utf-8")) == report

    text = tmp_path / "in.txt"
    text.write_text("董卓以其弟旻爲左將軍。封其兄子璜爲中軍校尉！", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    extracted = runner.invoke(app, ["extract", "--program", str(prog), str(text), "--out", str(out)])
    assert extracted.exit_code == 0, extracted.output + extracted.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
