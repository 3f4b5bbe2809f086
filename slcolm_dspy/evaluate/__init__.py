"""Evaluation: one evaluator class, two protocols (paper, strict)."""

from slcolm_dspy.evaluate.evaluator import (
    PROTOCOLS,
    Protocol,
    RelationEvaluator,
    score_paper_tables,
    summarise,
)

__all__ = ["PROTOCOLS", "Protocol", "RelationEvaluator", "score_paper_tables", "summarise"]
