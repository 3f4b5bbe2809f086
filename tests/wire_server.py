"""A loopback OpenAI-compatible chat server (standard library only) that records every request
and answers as a test scripts it: good replies, HTTP errors, torn bodies, closed connections,
replies that hang. Tests read what arrived on the wire from `server.requests`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    arrived: float
    finished: float = 0.0

    @property
    def prompt(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.body.get("messages", []))


@dataclass
class Reply:
    """What the server sends back: a status and JSON body, or one of the faults."""

    status: int = 200
    body: Any = None  # a dict is sent as JSON; bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    fault: str | None = None  # "close" (drop the connection) or "truncate" (half a body)


def chat_reply(content: str | None, *, logprobs: list[tuple[str, float]] | None = None) -> Reply:
    """A chat completion whose message is `content`; with `logprobs`, the first token's top
    alternatives (token, logprob), as llama.cpp and OpenAI send them."""
    choice: dict[str, Any] = {
        "index": 0,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": content},
    }
    if logprobs is not None:
        token = logprobs[0][0]
        top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in logprobs]
        choice["logprobs"] = {"content": [{"token": token, "logprob": logprobs[0][1], "top_logprobs": top}]}
    return Reply(
        body={
            "id": "chatcmpl-wire",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "wire",
            "choices": [choice],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
    )


Script = Callable[[Request, int], Reply]


class WireServer:
    """`with WireServer(script) as server:` serves on 127.0.0.1 at `server.api_base`; `script`
    gets each request and its 0-based number and returns the Reply."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                request = Request(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                )
                with outer._lock:
                    number = len(outer.requests)
                    outer.requests.append(request)
                    outer._in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer._in_flight)
                try:
                    outer._answer(self, outer.script(request, number))
                finally:
                    request.finished = time.monotonic()
                    with outer._lock:
                        outer._in_flight -= 1

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # a client that hangs up (a test's SIGKILL, a dropped connection) is not an error here
        self._server.handle_error = lambda request, client_address: None
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _answer(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay:
            self.stopping.wait(reply.delay)
        if reply.fault == "close":
            handler.close_connection = True
            handler.connection.close()
            return
        blob = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body or {}).encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json")
        for key, value in reply.headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(blob)))
        handler.end_headers()
        if reply.fault == "truncate":
            handler.wfile.write(blob[: len(blob) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.close()
            return
        handler.wfile.write(blob)

    def __enter__(self) -> WireServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
