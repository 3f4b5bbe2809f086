"""Optimizers (DSPy teleprompters) that compile an `SLCoLMProgram` on dev."""

from slcolm_dspy.teleprompt.dev_search import (
    Candidate,
    DevF1Search,
    SearchSpace,
    as_examples,
    candidate_table_rows,
    load_preset,
)

__all__ = ["Candidate", "DevF1Search", "SearchSpace", "as_examples", "candidate_table_rows", "load_preset"]
