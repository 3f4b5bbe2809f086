"""Errors that the CLI turns into one line instead of a traceback."""

from __future__ import annotations


class SlcolmError(Exception):
    """A problem the user can fix: bad input, a missing file, an unreachable server."""


class DataError(SlcolmError):
    """Bad input data, located by file and record so the user can find it."""

    def __init__(self, source: str, problem: str, record: str | int | None = None) -> None:
        self.source = source
        self.problem = problem
        self.record = record
        where = source if record is None else f"{source}: record {record}"
        super().__init__(f"{where}: {problem}")
