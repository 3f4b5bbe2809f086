"""The CLI's error contract: one line and an exit code, never a traceback unless asked for."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner
from wire_server import Reply, WireServer

import slcolm_dspy.cli.data_cmds as data_cmds
from slcolm_dspy.cli import errors
from slcolm_dspy.cli.app import app

runner = CliRunner()


def _boom(*args, **kwargs):
    raise RuntimeError("something we did not foresee\nsecond line")


def test_an_unexpected_error_is_one_line_and_a_log_with_the_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("SLCOLM_LOG_DIR", str(tmp_path))
    monkeypatch.setattr(data_cmds, "load_schema", _boom)
    result = runner.invoke(app, ["data", "stats"])
    assert result.exit_code == errors.EXIT_INTERNAL_ERROR
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "RuntimeError: something we did not foresee" in lines[0]
    assert "Traceback" not in result.output and "--debug" in lines[0]
    (log,) = tmp_path.glob("crash-*.log")
    text = log.read_text(encoding="utf-8")
    assert "Traceback" in text and "_boom" in text and "command: stats" in text


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setattr(data_cmds, "load_schema", _boom)
    monkeypatch.setitem(errors.DEBUG, "on", False)
    result = runner.invoke(app, ["--debug", "data", "stats"])
    assert isinstance(result.exception, RuntimeError)  # raised through, for the traceback


def test_a_refused_key_is_one_line_about_the_key(tiny_slm, corpus_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wire-wrong-key-123")
    refuse = Reply(
        status=401, body={"error": {"message": "Incorrect API key provided: sk-wire-wrong-key-123"}}
    )
    with WireServer(lambda r, n: refuse) as server:
        result = runner.invoke(
            app,
            ["guide", "--split", "dev", "--limit", "2", "--lm", "openai/wire", "--api-base", server.api_base,
             "--slm", str(tiny_slm[0]), "--demos", "0", "--out", str(tmp_path / "run"), "--data", str(corpus_dir)],
        )  # fmt: skip
    assert result.exit_code == errors.EXIT_USER_ERROR, result.output
    line = result.output.strip().splitlines()[-1]
    assert (
        line.startswith("error: the LLM server refused the API key (HTTP 401)") and "OPENAI_API_KEY" in line
    )
    assert "sk-wire-wrong-key-123" not in result.output  # the echoed key is masked
    assert len(server.requests) == 1


DEAD = {
    "http-500": Reply(status=500, body={"error": {"message": "boom"}}),
    "http-429": Reply(status=429, body={"error": {"message": "slow down"}}),
    "closed": Reply(fault="close"),
    "truncated": Reply(fault="truncate", body={"choices": []}),
    "no-choices": Reply(body={"id": "x", "object": "chat.completion", "model": "wire"}),
    "empty-choices": Reply(body={"id": "x", "object": "chat.completion", "model": "wire", "choices": []}),
    "null-choices": Reply(body={"id": "x", "object": "chat.completion", "model": "wire", "choices": None}),
}


def _guide(server: WireServer, tiny_slm, corpus_dir, out, limit: int = 2):
    return runner.invoke(
        app,
        ["guide", "--split", "dev", "--limit", str(limit), "--lm", "openai/wire", "--api-base", server.api_base,
         "--slm", str(tiny_slm[0]), "--demos", "0", "--retries", "0", "--out", str(out), "--data", str(corpus_dir)],
    )  # fmt: skip


@pytest.mark.parametrize("fault", sorted(DEAD))
def test_a_run_whose_every_llm_call_failed_says_so_and_exits_non_zero(tiny_slm, corpus_dir, tmp_path, fault):
    with WireServer(lambda r, n: DEAD[fault]) as server:
        result = _guide(server, tiny_slm, corpus_dir, tmp_path / "run")
    assert "Traceback" not in result.output and server.requests
    assert result.exit_code == errors.EXIT_ALL_LLM_CALLS_FAILED, result.output
    text = " ".join(result.output.split())
    assert "2 of 2 sentences sent to the LLM failed (2 x " in text and "run the same command again" in text
    assert "error: every LLM call failed" in text


def test_a_run_with_some_failed_calls_counts_them_and_exits_zero(tiny_slm, corpus_dir, tmp_path):
    from wire_server import chat_reply

    def script(request, n):  # the first sentence's call fails, the rest are answered
        return DEAD["http-500"] if n == 0 else chat_reply('{"entities": [], "relations": []}')

    with WireServer(script) as server:
        result = _guide(server, tiny_slm, corpus_dir, tmp_path / "run", limit=3)
    assert result.exit_code == 0, result.output
    assert "1 of 3 sentences sent to the LLM failed (1 x HTTP 500" in " ".join(result.output.split())


def test_a_dead_server_fails_every_call_and_the_run_says_so(tiny_slm, corpus_dir, tmp_path):
    from slcolm_dspy.guide.server import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens there
    result = runner.invoke(
        app,
        ["guide", "--split", "dev", "--limit", "2", "--lm", "openai/wire", "--api-base", dead,
         "--slm", str(tiny_slm[0]), "--demos", "0", "--retries", "0", "--out", str(tmp_path / "run"),
         "--data", str(corpus_dir)],
    )  # fmt: skip
    assert result.exit_code == errors.EXIT_ALL_LLM_CALLS_FAILED, result.output
    assert "2 of 2 sentences sent to the LLM failed" in " ".join(result.output.split())
