"""Rich tables for metric dicts produced by the evaluator."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from slcolm_dspy.evaluate.report import group_macro


def make_console(stderr: bool = False) -> Console:
    """A console that does not wrap tables at 80 columns when output goes to a file or pipe."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, soft_wrap=stderr, width=None if stream.isatty() else 160)


@contextlib.contextmanager
def progress_bar(console: Console, label: str) -> Iterator[tuple[Progress, Callable[[int, int], None]]]:
    """A progress bar of sentences done, and the `on_done(done, total)` callback that moves it."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(label, total=None)
        yield bar, lambda done, total: bar.update(task, completed=done, total=total)


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def prf_cells(result: Mapping[str, Any], prefix: str) -> str:
    return f"{pct(result[prefix + '_p'])} / {pct(result[prefix + '_r'])} / {pct(result[prefix + '_f1'])}"


def summary_table(title: str, rows: Mapping[str, Mapping[str, Any]]) -> Table:
    """One row per named result: micro and macro P/R/F1, head/tail macro-F1, NER F1."""
    table = Table(title=title, title_justify="left")
    for col in (
        "system",
        "micro P / R / F1",
        "macro P / R / F1",
        "head macro",
        "tail macro",
        "NER F1",
        "c / p / g",
    ):
        table.add_column(col, justify="left" if col == "system" else "right")
    for name, r in rows.items():
        table.add_row(
            name,
            prf_cells(r, "micro"),
            prf_cells(r, "macro"),
            group_macro(r, "head"),
            group_macro(r, "tail"),
            pct(r["ner_f1"]) if "ner_f1" in r else "-",
            f"{r['correct']} / {r['predicted']} / {r['gold']}",
        )
    return table


def per_type_table(result: Mapping[str, Any], head_types: set[str]) -> Table:
    table = Table(title="per type", title_justify="left")
    for col in ("type", "group", "correct", "predicted", "gold", "P", "R", "F1"):
        table.add_column(col, justify="left" if col in ("type", "group") else "right")
    for t, row in result["per_type"].items():
        table.add_row(
            t,
            "head" if t in head_types else "tail",
            str(row["correct"]),
            str(row["predicted"]),
            str(row["gold"]),
            pct(row["p"]),
            pct(row["r"]),
            pct(row["f1"]),
        )
    return table
