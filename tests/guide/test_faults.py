"""Faults a long run must survive: SIGKILL of the command itself (mid-write included), then a
rerun of the same command. Ids are counted: none lost, none written twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from wire_server import Reply, WireServer, chat_reply

SLCOLM = str(Path(sys.executable).with_name("slcolm"))
EMPTY = json.dumps({"entities": [], "relations": []})


def foreground() -> None:
    """In the child: Ctrl-C as in a terminal. A run started in the background (`cmd &`, some CI
    runners) inherits SIGINT ignored, and a Python started so keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ids_in(path: Path) -> list[str]:
    return [json.loads(x)["id"] for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def kill_when(process: subprocess.Popen, path: Path, lines: int, timeout: float = 180) -> None:
    """SIGKILL `process` once `path` holds at least `lines` lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if path.is_file() and path.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_slm_predict_killed_then_rerun(tiny_slm, corpus_dir, tmp_path):
    out = tmp_path / "pred.jsonl"
    command = [SLCOLM, "slm", "predict", "--model", str(tiny_slm[0]), "--data", str(corpus_dir / "dev.json"),
               "--out", str(out), "--batch-size", "1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(process, out, 20)
    first = len(ids_in(out)) if not out.read_bytes().endswith(b"}") else None
    # a torn tail as a crash mid-write leaves it: half a record, half a UTF-8 character
    with out.open("ab") as handle:
        handle.write('{"id": "dev-9999", "text": "董'.encode()[:-1])
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ids = ids_in(out)
    assert len(ids) == len(set(ids)) == 410 and (first is None or first >= 20)


def test_guide_killed_then_rerun(tiny_slm, corpus_dir, tmp_path):
    run = tmp_path / "run"
    journal = run / "predictions.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": "sk-wire-faults"}
    with WireServer(lambda r, n: Reply(body=chat_reply(EMPTY).body, delay=0.3)) as server:
        command = [SLCOLM, "guide", "--split", "dev", "--limit", "8", "--lm", "openai/wire", "--api-base",
                   server.api_base, "--slm", str(tiny_slm[0]), "--demos", "0", "--out", str(run),
                   "--data", str(corpus_dir)]  # fmt: skip
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_when(process, journal, 2)
        before = ids_in(journal)
        asked = len(server.requests)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ids = ids_in(journal)
    assert len(ids) == len(set(ids)) == 8 and ids[: len(before)] == before
    # the rerun asked only for what was not written (and at most the one in flight at the kill)
    assert len(server.requests) - asked <= 8 - len(before)


def test_a_server_killed_mid_run_loses_nothing(tiny_slm, corpus_dir, tmp_path):
    """The server goes away after 3 answers: the run finishes with those sentences failed (the
    SLM's records standing), exit 0; a rerun against a server that is back fills them in."""
    run = tmp_path / "run"
    journal = run / "predictions.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": "sk-wire-faults"}
    with WireServer(lambda r, n: chat_reply(EMPTY) if n < 3 else Reply(fault="close")) as server:
        command = [SLCOLM, "guide", "--split", "dev", "--limit", "6", "--lm", "openai/wire", "--api-base",
                   server.api_base, "--slm", str(tiny_slm[0]), "--demos", "0", "--out", str(run),
                   "--data", str(corpus_dir), "--retries", "0"]  # fmt: skip
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    blobs = [json.loads(x) for x in journal.read_text("utf-8").splitlines()]
    assert len(blobs) == 6 and sum(1 for b in blobs if b["guide"].get("failed")) == 3
    with WireServer(lambda r, n: chat_reply(EMPTY)) as server:
        command[command.index("--api-base") + 1] = server.api_base
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        assert len(server.requests) == 3
    blobs = [json.loads(x) for x in journal.read_text("utf-8").splitlines()]
    assert sorted(b["id"] for b in blobs) == sorted({b["id"] for b in blobs}) and len(blobs) == 6
    assert not any(b["guide"].get("failed") for b in blobs)


WIDE_PRESET = (
    "[search]\nsample = 8\nbudget_calls = 400\nmax_llm_share = 1.0\ntop_n = 2\n"
    '[prompt]\nmodule = ["choice"]\nrotations = [1]\n'
    "[routing]\nlow = [0.0]\nhigh = [1.01]\nmargin = [0.2]\n"
)
LETTER_A = [("A", -0.1), ("B", -2.5), ("C", -3.0)]


def test_compile_killed_then_rerun_resumes_its_candidate_run(tiny_slm, corpus_dir, tmp_path):
    preset = tmp_path / "wide.toml"
    preset.write_text(WIDE_PRESET, encoding="utf-8")
    prog = tmp_path / "prog"
    env = {**os.environ, "OPENAI_API_KEY": "sk-wire-faults"}
    with WireServer(lambda r, n: Reply(body=chat_reply("A", logprobs=LETTER_A).body, delay=0.2)) as server:
        command = [SLCOLM, "compile", "--lm", "openai/wire", "--api-base", server.api_base, "--slm",
                   str(tiny_slm[0]), "--out", str(prog), "--preset", str(preset), "--data", str(corpus_dir)]  # fmt: skip
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        journals: list[Path] = []
        while time.monotonic() < deadline and process.poll() is None:
            journals = list(prog.glob("compile/*/run-*/predictions.jsonl"))
            if journals and journals[0].read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.05)
        assert journals and process.poll() is None, "compile ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        before = ids_in(journals[0])
        assert not (prog / "manifest.json").exists()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert (prog / "manifest.json").is_file()
    ids = ids_in(journals[0])
    assert len(ids) == len(set(ids)) == 8 and ids[: len(before)] == before


def test_extract_killed_then_rerun(tiny_slm, schema, handful, tmp_path):
    from slcolm_dspy.guide.choice import RoutingSettings
    from slcolm_dspy.guide.pipeline import GuideConfig
    from slcolm_dspy.merge.policy import MergePolicy
    from slcolm_dspy.program.artifact import save_program
    from slcolm_dspy.program.module import SLCoLMProgram

    config = GuideConfig(module="choice", demos=0, rotations=1, routing=RoutingSettings(low=0.0, high=1.01))
    prog = tmp_path / "prog"
    save_program(prog, SLCoLMProgram(schema, config, MergePolicy("llm")), schema, lm={"model": "local"},
                 slm_dir=tiny_slm[0], retrieval={}, dev_metrics={})  # fmt: skip
    text = tmp_path / "in.txt"
    text.write_text("\n".join(h.text for h in handful), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.run" / "predictions.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": "sk-wire-faults"}
    with WireServer(lambda r, n: Reply(body=chat_reply("A", logprobs=LETTER_A).body, delay=0.3)) as server:
        command = [SLCOLM, "extract", "--program", str(prog), str(text), "--out", str(out), "--lm", "openai/wire",
                   "--api-base", server.api_base]  # fmt: skip
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_when(process, journal, 2)
        before = ids_in(journal)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ids = ids_in(journal)
    assert len(ids) == len(set(ids)) and ids[: len(before)] == before
    assert len(ids_in(out)) == len(set(ids_in(out))) == len(ids)


def test_ctrl_c_stops_slm_training(corpus_dir, tmp_path):
    """A long command other than the guide: SIGINT during training ends it within seconds, one
    line and exit 130, no traceback."""
    out = tmp_path / "slm"
    command = [SLCOLM, "slm", "train", "--data", str(corpus_dir), "--out", str(out), "--encoder", "scratch",
               "--epochs", "50"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=foreground
    )
    deadline = time.monotonic() + 180
    # config.json is written when training starts (corpus read, model built)
    while time.monotonic() < deadline and process.poll() is None and not (out / "config.json").exists():
        time.sleep(0.1)
    time.sleep(2)  # inside the epochs
    assert process.poll() is None, process.communicate()
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and time.monotonic() - sent < 60
    assert "interrupted" in stderr and "Traceback" not in stderr + stdout


def test_which_llm_failures_are_retried_given_up_or_stop_the_run():
    import litellm

    from slcolm_dspy.guide.faults import RetryPolicy, judge

    def status_error(cls, status):
        import httpx

        response = httpx.Response(status, request=httpx.Request("POST", "http://127.0.0.1/v1"))
        return cls("x", model="m", llm_provider="openai", response=response)

    assert (
        judge(litellm.ContextWindowExceededError("too long", model="m", llm_provider="openai")) == "give_up"
    )
    assert judge(litellm.BadRequestError("bad", model="m", llm_provider="openai")) == "stop"
    assert judge(status_error(litellm.AuthenticationError, 401)) == "stop"
    assert judge(litellm.RateLimitError("slow", model="m", llm_provider="openai")) == "retry"
    assert judge(litellm.APIConnectionError("gone", model="m", llm_provider="openai")) == "retry"
    assert judge(TimeoutError()) == "retry"
    assert judge(ValueError("a defect of ours")) == "raise"  # never passed off as a failed sentence
    policy = RetryPolicy(retries=3, base_delay=1.0, max_delay=5.0)
    assert [policy.delay(a, TimeoutError()) for a in range(4)] == [1.0, 2.0, 4.0, 5.0]
