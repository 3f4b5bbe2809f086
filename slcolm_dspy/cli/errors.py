"""Turn every failure into one line on stderr and an exit code, never a traceback by default.

User-fixable problems (SlcolmError) print as they are, exit 2. Ctrl-C prints how to resume, exit
130, and does not wait for LLM requests still hanging. Anything else is a defect of ours: one line
names it and the log file that holds its traceback (`slcolm --debug ...` prints it instead).
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import typer

from slcolm_dspy.cli.render import make_console
from slcolm_dspy.core.errors import SlcolmError

F = TypeVar("F", bound=Callable[..., Any])
stderr = make_console(stderr=True)

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130
EXIT_ALL_LLM_CALLS_FAILED = 4
DEBUG = {"on": os.environ.get("SLCOLM_DEBUG") == "1"}


def crash_log_dir() -> Path:
    return Path(os.environ.get("SLCOLM_LOG_DIR") or Path(tempfile.gettempdir()) / "slcolm-logs")


def _write_crash_log(exc: BaseException, command: str) -> Path | None:
    try:
        folder = crash_log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        header = f"command: {command}\nargv: {' '.join(sys.argv[1:])}\n"
        path.write_text(header + "".join(traceback.format_exception(exc)), encoding="utf-8")
        return path
    except OSError:
        return None


def _exit_now(code: int) -> None:
    """Exit at once: threads still waiting on an LLM that does not answer must not keep the
    process alive after Ctrl-C (everything written is flushed already)."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise typer.Exit(code)


ASK_AGAIN = "run the same command again to ask for those only"


def say_llm_failures(failed: int, answered: int, causes: Mapping[str, int], again: str = ASK_AGAIN) -> None:
    """After a run: one line counting the sentences whose LLM calls failed, by cause, and how to
    ask again; exit EXIT_ALL_LLM_CALLS_FAILED when no sentence got an answer at all (the output
    is then the SLM's alone, which must not pass for a guided run)."""
    if not failed:
        return
    by_cause = "; ".join(f"{n} x {cause}" for cause, n in sorted(causes.items(), key=lambda kv: -kv[1]))
    stderr.print(
        f"{failed} of {failed + answered} sentences sent to the LLM failed ({by_cause}); the SLM's"
        f" output stands for them; {again}",
        markup=False,
    )
    if not answered:
        stderr.print("error: every LLM call failed: is the LLM server up and answering?", markup=False)
        raise typer.Exit(EXIT_ALL_LLM_CALLS_FAILED)


def reports_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from slcolm_dspy.guide.faults import Interrupted

        try:
            return command(*args, **kwargs)
        except Interrupted as exc:
            stderr.print(str(exc), markup=False)
            _exit_now(EXIT_INTERRUPTED)
        except SlcolmError as exc:
            stderr.print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            stderr.print("interrupted; results written so far are kept (rerun to resume)", markup=False)
            _exit_now(EXIT_INTERRUPTED)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if DEBUG["on"]:
                raise
            log = _write_crash_log(exc, command.__name__)
            where = f"; traceback in {log}" if log else ""
            first = (str(exc).splitlines() or [""])[0][:200]
            stderr.print(
                f"error: unexpected {type(exc).__name__}: {first}{where} (rerun with --debug to see it)",
                markup=False,
            )
            raise typer.Exit(EXIT_INTERNAL_ERROR) from None

    return wrapper  # type: ignore[return-value]
