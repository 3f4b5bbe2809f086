"""`RunJournal`: the one owner of a guide run's directory. Its file names live here only.

    predictions.jsonl  one line per answered sentence: the guide's record and its metadata
                       ("guide"); a sentence whose LLM calls kept failing is marked failed and
                       is asked again by the next run
    slm.jsonl          the SLM's record for every sentence of the run
    run.json           the last invocation's summary, with totals over every invocation
                       ("total": tokens, calls, cost, failures)

Runs written by earlier versions have the same files and read the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.data.io import complete_records, drop_torn_tail, iter_jsonl, rewrite_jsonl, written_ids
from slcolm_dspy.data.readers import read_jsonl
from slcolm_dspy.data.writers import write_jsonl

PREDICTIONS, SLM, SUMMARY = "predictions.jsonl", "slm.jsonl", "run.json"
# summed over every invocation on one directory: what the whole run cost
TOTAL_KEYS = (
    "sentences",
    "llm_sentences",
    "llm_calls",
    "cached_calls",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "seconds",
    "prompt_chars_sum",
    "prompt_chars_n",
)


def _failed(line: Any) -> bool:
    """A journal line of a sentence whose LLM calls kept failing."""
    return isinstance(line, dict) and bool((line.get("guide") or {}).get("failed"))


@dataclass(frozen=True)
class RunJournal:
    directory: Path

    @property
    def predictions(self) -> Path:
        return self.directory / PREDICTIONS

    @property
    def slm(self) -> Path:
        return self.directory / SLM

    @property
    def summary_path(self) -> Path:
        return self.directory / SUMMARY

    # --- what is done ----------------------------------------------------------------------
    def finished_ids(self) -> set[str]:
        """Sentences answered; failed ones (LLM calls that kept failing) are not."""
        if not self.predictions.is_file():
            return set()
        lines = complete_records(self.predictions)
        return {str(o["id"]) for o in lines if isinstance(o, dict) and "id" in o and not _failed(o)}

    def is_complete(self, records: Sequence[Sentence]) -> bool:
        """Every record has a guide answer (none failed) and an SLM record: reading needs no
        model and no LLM. A run with failed sentences is not complete: running it again asks
        for those."""
        ids = {r.id for r in records}
        return ids <= self.finished_ids() and ids <= written_ids(self.slm)

    def resume(self) -> set[str]:
        """Make the predictions ready to append to: a torn last line is cut and failed sentences
        are taken out (so they are asked again, and no id is ever written twice); returns the
        ids already answered."""
        if not self.predictions.is_file():
            return set()
        drop_torn_tail(self.predictions)
        rewrite_jsonl(self.predictions, lambda line: not _failed(line))
        return written_ids(self.predictions)

    # --- the records -----------------------------------------------------------------------
    def write_slm(self, records: Iterable[Sentence]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_jsonl(list(records), self.slm)

    def read_slm(self, schema: Schema) -> dict[str, Sentence]:
        return {r.id: r for r in read_jsonl(self.slm, schema)[0]} if self.slm.is_file() else {}

    def read_predictions(self, schema: Schema) -> dict[str, Sentence]:
        return (
            {r.id: r for r in read_jsonl(self.predictions, schema)[0]} if self.predictions.is_file() else {}
        )

    def read_meta(self) -> dict[str, dict[str, Any]]:
        """The guide's metadata per sentence id."""
        if not self.predictions.is_file():
            return {}
        return {str(o["id"]): o.get("guide", {}) for _, o in iter_jsonl(self.predictions)}

    @staticmethod
    def line(record: Sentence, meta: dict[str, Any]) -> str:
        """One predictions line: the record and the guide's metadata."""
        return json.dumps({**record.to_json(), "guide": meta}, ensure_ascii=False) + "\n"

    # --- the summary -----------------------------------------------------------------------
    def read_summary(self) -> dict[str, Any]:
        if not self.summary_path.is_file():
            return {}
        return json.loads(self.summary_path.read_text(encoding="utf-8"))

    def totals(self) -> dict[str, Any]:
        """Totals over every invocation on this directory (none for an SLM-only run)."""
        return self.read_summary().get("total", {})

    def write_summary(self, result: dict[str, Any]) -> None:
        self.summary_path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")

    def with_totals(self, result: dict[str, Any], failures: dict[str, int]) -> dict[str, Any]:
        """`result` with "total": this invocation added to the earlier ones. Failed sentences
        are asked again by the next invocation, so failures count this invocation's only."""
        previous = self.totals()
        total = {key: previous.get(key, 0) + result[key] for key in TOTAL_KEYS}
        total["failed"] = result["failed"]
        total["failures"] = dict(failures)
        return {**result, "total": total}
