"""Run a program's guide stage over records into a run directory (resumable), and read back
what it produced. Used by the optimizer (one directory per prompt setting), `extract` and
`evaluate`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.guide.journal import RunJournal
from slcolm_dspy.guide.pipeline import Guide, run_guide
from slcolm_dspy.program.module import SLCoLMProgram, prompt_key
from slcolm_dspy.program.outcome import GuideOutcome


def is_complete(run_dir: Path, records: Sequence[Sentence]) -> bool:
    """Whether reading the run back needs no model and no LLM (RunJournal.is_complete)."""
    return RunJournal(run_dir).is_complete(records)


def run_program(
    program: SLCoLMProgram,
    guide: Guide,
    records: Sequence[Sentence],
    lm: Any,
    run_dir: Path,
    *,
    concurrency: int = 1,
    settings: dict[str, Any] | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> tuple[GuideOutcome, int]:
    """The program's guide run over `records` (resumed where it stopped) and the number of new
    (uncached) LLM calls it made."""
    calls = 0
    if not is_complete(run_dir, records):
        program.bind(guide)
        result = run_guide(
            guide, records, lm, run_dir, concurrency=concurrency, settings=settings, on_done=on_done
        )
        calls = result["llm_calls"] - result["cached_calls"]
    return GuideOutcome.read(run_dir, records, guide.schema), calls


class GuideRunner:
    """The optimizer's `CandidateRunner`: each prompt setting gets its own run directory under
    `work_dir`, named by `prompt_key`, so an interrupted compile resumes where it stopped."""

    def __init__(
        self,
        guide: Guide,
        lm: Any,
        work_dir: Path,
        *,
        concurrency: int = 1,
        on_done: Callable[[int, int], None] | None = None,
    ) -> None:
        self.guide = guide
        self.lm = lm
        self.work_dir = work_dir
        self.concurrency = concurrency
        self.on_done = on_done

    def run_dir(self, program: SLCoLMProgram) -> Path:
        return self.work_dir / f"run-{prompt_key(program)}"

    def __call__(self, program: SLCoLMProgram, records: Sequence[Sentence]) -> tuple[GuideOutcome, int]:
        # the guide sees text only; the optimizer scores the outcome against the gold it holds
        inputs = [r.with_predictions((), ()) for r in records]
        return run_program(
            program,
            self.guide,
            inputs,
            self.lm,
            self.run_dir(program),
            concurrency=self.concurrency,
            on_done=self.on_done,
        )
