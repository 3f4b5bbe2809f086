"""The `slcolm` executable. The command modules are imported inside the guard: Ctrl-C while the
heavy libraries load (seconds on a busy machine) is one line, like Ctrl-C anywhere else."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from slcolm_dspy.cli.app import app
    except KeyboardInterrupt:
        sys.stderr.write("interrupted while starting; nothing was done\n")
        sys.exit(130)
    app()
