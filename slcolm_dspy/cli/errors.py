"""Turn user-fixable errors into one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from slcolm_dspy.cli.render import make_console
from slcolm_dspy.core.errors import SlcolmError

F = TypeVar("F", bound=Callable[..., Any])
stderr = make_console(stderr=True)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def reports_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SlcolmError as exc:
            stderr.print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            stderr.print("interrupted; results written so far are kept", markup=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]
