"""The `slcolm` executable. While the command modules and their libraries load (seconds on a busy
machine) Ctrl-C ends the process at once: a KeyboardInterrupt raised inside a library's import
can be swallowed by its own fallbacks, and the command would then run on. Once loaded, Ctrl-C is
a KeyboardInterrupt again, which every command turns into one line and a resume hint."""

from __future__ import annotations

import os
import signal
import sys


def _stop_while_starting(signum: int, frame: object) -> None:
    os.write(2, b"interrupted while starting; nothing was done\n")
    os._exit(130)


def main() -> None:
    previous = signal.signal(signal.SIGINT, _stop_while_starting)
    from slcolm_dspy.cli.app import app

    signal.signal(signal.SIGINT, previous)
    sys.exit(app())
