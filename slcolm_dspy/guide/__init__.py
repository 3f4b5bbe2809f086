"""The guide stage: candidate definitions, demonstrations, DSPy programs, LLM backends."""
