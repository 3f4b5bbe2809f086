"""Evaluation: one evaluator class, two protocols (paper, strict)."""

from slcolm_dspy.evaluate.evaluator import (
    PROTOCOLS,
    Protocol,
    RelationEvaluator,
    ranking_key,
    score_paper_tables,
    summarise,
)

__all__ = ["PROTOCOLS", "Protocol", "RelationEvaluator", "ranking_key", "score_paper_tables", "summarise"]
