"""slcolm-dspy: a small supervised model guides a large language model to extract relations."""

__version__ = "0.1.0"
