"""What one guide run produced on a set of sentences, read back from its run directory, and the
offline views of it: the same answers re-read under another routing band or other answer
thresholds, which the optimizer compares without asking the LLM again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.guide.journal import RunJournal
from slcolm_dspy.guide.pipeline import GuideConfig
from slcolm_dspy.guide.strategies import TopTwos, strategy_for


@dataclass
class GuideOutcome:
    records: list[Sentence]  # the inputs, in order
    llm: list[Sentence]  # the guide's record per sentence
    slm: list[Sentence]  # the SLM's record per sentence
    meta: list[dict[str, Any]]  # the guide's metadata per sentence (answers, routing scores)
    run: dict[str, Any]  # run.json of the (last) run

    @classmethod
    def read(cls, run_dir: Path, records: Sequence[Sentence], schema: Schema) -> GuideOutcome:
        journal = RunJournal(run_dir)
        llm_by_id = journal.read_predictions(schema)
        meta_by_id = journal.read_meta()
        slm_by_id = journal.read_slm(schema)
        missing = [r.id for r in records if r.id not in llm_by_id or r.id not in slm_by_id]
        if missing:
            raise SlcolmError(
                f"{run_dir}: no guide output for {len(missing)} sentences (first: {missing[0]})"
            )
        run = journal.read_summary()
        return cls(
            list(records),
            [llm_by_id[r.id] for r in records],
            [slm_by_id[r.id] for r in records],
            [meta_by_id[r.id] for r in records],
            run,
        )

    def subset(self, indices: Sequence[int]) -> GuideOutcome:
        pick = list(indices)
        return GuideOutcome(
            [self.records[i] for i in pick],
            [self.llm[i] for i in pick],
            [self.slm[i] for i in pick],
            [self.meta[i] for i in pick],
            self.run,
        )


def goes_to_llm(meta: dict[str, Any], config: GuideConfig) -> bool:
    """Whether a sentence reaches the LLM under `config` (its routing band and module)."""
    return strategy_for(config).goes_to_llm(meta, config)


def llm_view(outcome: GuideOutcome, config: GuideConfig) -> tuple[list[Sentence], float]:
    """The guided records as `config` would have produced them, and the share of sentences that
    reached the LLM. Exact when `config`'s band lies inside the band of the run that was made."""
    strategy = strategy_for(config)
    out, sent = [], 0
    for slm, llm, meta in zip(outcome.slm, outcome.llm, outcome.meta, strict=True):
        routed = strategy.goes_to_llm(meta, config)
        sent += int(routed)
        out.append(strategy.reread(slm, llm, meta, config, routed))
    return out, sent / max(1, len(outcome.records))


def routed_share(pair_scores: TopTwos, config: GuideConfig) -> float:
    """The share of sentences `config` sends to the LLM, from each sentence's pairs' two best SLM
    probabilities alone (no LLM answer needed)."""
    return strategy_for(config).routed_share(pair_scores, config)
