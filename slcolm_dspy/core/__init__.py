"""The core layer: the record type, the task schema and errors. It imports nothing above it."""

from slcolm_dspy.core.errors import DataError, SlcolmError
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.core.schema import Schema, load_schema

__all__ = ["DataError", "Entity", "Relation", "Schema", "Sentence", "SlcolmError", "load_schema"]
