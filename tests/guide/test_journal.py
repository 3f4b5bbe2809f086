"""RunJournal, the one owner of a guide run's directory: what is done, what is asked again,
and totals over every invocation."""

from __future__ import annotations

from slcolm_dspy.core.records import Entity, Sentence
from slcolm_dspy.guide.journal import PREDICTIONS, RunJournal


def _record(i: int) -> Sentence:
    return Sentence(f"s{i}", "曹操字孟德", (Entity("PER", "曹操", 0, 2),), ())


def test_resume_cuts_a_torn_line_and_asks_failed_sentences_again(tmp_path):
    journal = RunJournal(tmp_path)
    with journal.predictions.open("w", encoding="utf-8") as sink:
        sink.write(RunJournal.line(_record(0), {"llm": True}))
        sink.write(RunJournal.line(_record(1), {"llm": False, "failed": "HTTP 500: boom"}))
        sink.write(RunJournal.line(_record(2), {"llm": True})[:25])  # a crash mid-write
    assert journal.finished_ids() == {"s0"}
    assert journal.resume() == {"s0"}
    lines = (tmp_path / PREDICTIONS).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and '"s0"' in lines[0]  # the failed and the torn line are gone
    journal.write_slm([_record(0)])
    assert journal.is_complete([_record(0)]) and not journal.is_complete([_record(0), _record(1)])
    assert journal.read_meta() == {"s0": {"llm": True}}


def test_totals_add_up_over_invocations_and_failures_are_this_invocations(tmp_path):
    journal = RunJournal(tmp_path)
    first = {"sentences": 3, "llm_sentences": 2, "llm_calls": 4, "cached_calls": 1, "prompt_tokens": 100,
             "completion_tokens": 10, "cost": 0.5, "seconds": 2.0, "prompt_chars_sum": 900,
             "prompt_chars_n": 3, "failed": 1}  # fmt: skip
    journal.write_summary(journal.with_totals(first, {"HTTP 500: boom": 1}))
    second = {**first, "failed": 0}
    result = journal.with_totals(second, {})
    assert result["total"]["llm_calls"] == 8 and result["total"]["cost"] == 1.0
    assert result["total"]["failed"] == 0 and result["total"]["failures"] == {}
    journal.write_summary(result)
    assert journal.totals()["sentences"] == 6 and journal.read_summary()["failed"] == 0
