"""A real OpenAI-compatible llama.cpp server on loopback (xllamacpp), for `--lm local`.

`LocalServer` starts it in a child process on a free 127.0.0.1 port, waits until it answers, and
stops it on exit, so a crash or Ctrl-C in the caller never leaves it running; the child also
watches its parent and stops when the parent is gone, since a killed parent (a Ray actor ended
by its pool, `kill -9`) runs no exit code. `python -m
slcolm_dspy.guide.server` (what `slcolm serve` runs) is the child.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from slcolm_dspy.core.errors import SlcolmError

LOOPBACK = "127.0.0.1"
MODEL_ALIAS = "local"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def serve_forever(
    model: Path,
    port: int,
    *,
    n_ctx: int,
    threads: int,
    parallel: int,
    alias: str,
    exit_with_parent: bool = False,
) -> None:
    """Run the server in this process until SIGTERM/SIGINT (or, with `exit_with_parent`, until
    the process that started it has ended)."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.model_alias = alias
    params.hostnames = [LOOPBACK]
    params.port = port
    params.n_ctx = n_ctx * parallel  # llama.cpp splits the context between parallel slots
    params.n_parallel = parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    server = xllamacpp.Server(params)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if exit_with_parent:
        threading.Thread(target=_stop_when_orphaned, args=(os.getppid(), stop), daemon=True).start()
    print(f"serving {model.name} as {alias!r} on http://{LOOPBACK}:{port}/v1", flush=True)
    stop.wait()
    _shut_down([server])


STOP_GRACE = 5.0  # seconds llama.cpp gets to clean up before the process ends anyway


def _shut_down(holder: list[object]) -> None:
    """Drop the server (llama.cpp cleans up in its destructor) and end the process. The
    destructor waits for requests in flight and can hang there ("cleaning up" and no exit): after
    STOP_GRACE seconds the process ends regardless, which closes the sockets, so a client waiting
    on a reply gets a closed connection at once instead of waiting out its timeout."""
    cleaned = threading.Event()

    def drop() -> None:
        holder.clear()  # the last reference: the destructor runs here
        cleaned.set()

    threading.Thread(target=drop, daemon=True).start()
    finished = cleaned.wait(STOP_GRACE)
    print(
        "stopped" if finished else f"stopped (llama.cpp still cleaning up after {STOP_GRACE:.0f} s)",
        flush=True,
    )
    os._exit(0)


def _stop_when_orphaned(parent: int, stop: threading.Event, every: float = 1.0) -> None:
    # an orphan is re-parented (to init or a subreaper): its parent id changes
    while not stop.wait(every):
        if os.getppid() != parent:
            stop.set()


class LocalServer:
    """Context manager: a llama.cpp server for `model` on a free loopback port."""

    def __init__(
        self,
        model: Path,
        *,
        n_ctx: int = 4096,
        threads: int | None = None,
        parallel: int = 1,
        alias: str = MODEL_ALIAS,
        log: Path | None = None,
        ready_timeout: float = 120.0,
    ) -> None:
        self.model = model
        self.port = free_port()
        self.alias = alias
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.parallel = parallel
        self.log = log
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log_handle: BinaryIO | None = None

    @property
    def api_base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    def start(self) -> LocalServer:
        args = [sys.executable, "-m", "slcolm_dspy.guide.server", "--model", str(self.model)]
        args += ["--port", str(self.port), "--n-ctx", str(self.n_ctx), "--threads", str(self.threads)]
        args += ["--parallel", str(self.parallel), "--alias", self.alias, "--exit-with-parent"]
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = self.log.open("ab")
        sink = self._log_handle or subprocess.DEVNULL
        self.process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SlcolmError(
                    f"the local LLM server exited with code {self.process.returncode} while starting"
                )
            try:
                with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise SlcolmError(f"the local LLM server did not answer within {self.ready_timeout:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log_handle:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--alias", default=MODEL_ALIAS)
    parser.add_argument("--exit-with-parent", action="store_true", help="stop when the parent process ends")
    args = parser.parse_args()
    serve_forever(
        args.model,
        args.port or free_port(),
        n_ctx=args.n_ctx,
        threads=args.threads,
        parallel=args.parallel,
        alias=args.alias,
        exit_with_parent=args.exit_with_parent,
    )


if __name__ == "__main__":
    main()
