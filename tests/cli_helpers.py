"""The CLI's error contract as the tests check it (the folder tests/ is on the path, see conftest)."""

from __future__ import annotations

from typing import Any


def assert_one_line_error(result: Any, *words: str) -> str:
    """Exit 2, no traceback, exactly one `error:` line, and every word in that error (the
    console may wrap a long error over the lines after it; the error is the last thing said)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1, result.output
    message = " ".join(" ".join(lines[errors[0] :]).split())
    for word in words:
        assert word in message, message
    return lines[errors[0]]
