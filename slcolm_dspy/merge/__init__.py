"""Merging SLM and LLM outputs per relation type."""

from slcolm_dspy.merge.modes import MERGE_MODES, MergeMode, merge_tables
from slcolm_dspy.merge.records import merge_records

__all__ = ["MERGE_MODES", "MergeMode", "merge_records", "merge_tables"]
