"""The small language model (SLM): encoders and the span-based joint extractor."""
