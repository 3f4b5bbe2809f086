"""A compiled SLCoLM program: the DSPy modules, the settings and merge policy chosen on dev, and
the directory format that carries them from `slcolm compile` to `extract` and `evaluate`."""

from slcolm_dspy.program.artifact import CompiledProgram, load_program, save_program
from slcolm_dspy.program.module import SLCoLMProgram
from slcolm_dspy.program.outcome import GuideOutcome, llm_view

__all__ = ["CompiledProgram", "GuideOutcome", "SLCoLMProgram", "llm_view", "load_program", "save_program"]
