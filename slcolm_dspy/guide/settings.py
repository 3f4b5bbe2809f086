"""What a guide run is set with, what it prepares for each sentence and what it counts: the
leaf the pipeline and its strategies share (a strategy sees the guide through `GuideContext`,
the few things it reads, so neither imports the other)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.guide.choice import ChoiceThresholds, RoutingSettings
from slcolm_dspy.guide.demos import Demo, DemoOrder

if TYPE_CHECKING:  # torch comes with the SLM, loaded where a guide runs: a Ray driver never imports it
    from slcolm_dspy.slm.extractor import PairScores

ModuleName = Literal["extract", "choice"]


@dataclass
class GuideConfig:
    module: ModuleName = "extract"
    demos: int = 2
    demo_source: Literal["sentence", "slm"] = "sentence"
    demo_order: DemoOrder = "ascending"
    top_m: int = 4
    max_definitions: int = 12
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    thresholds: ChoiceThresholds = field(default_factory=ChoiceThresholds)
    # extract: only sentences with at least one routed pair go to the LLM (filter-then-rerank);
    # the others keep the SLM's record
    route_sentences: bool = False
    verify: bool = True  # choice: ask yes/no about uncertain SLM triples
    relabel: bool = True  # choice: ask which type holds for uncertain pairs
    rotations: int = 2
    adapter: Literal["compact", "json", "chat"] = "compact"
    json_mode: bool = True  # ask the backend for a JSON object (llama.cpp constrains decoding to it)


@dataclass
class Prepared:
    """Everything about one sentence that does not need the LLM."""

    record: Sentence
    slm: Sentence
    pair_scores: list[PairScores]
    definitions: list[str]
    demos: list[Demo]


@dataclass
class RunSummary:
    sentences: int = 0
    resumed: int = 0
    llm_sentences: int = 0
    llm_calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    prompt_chars: list[int] = field(default_factory=list)
    parse_errors: int = 0
    failed: int = 0  # sentences whose LLM calls kept failing: the SLM's record stands for them
    failures: Counter[str] = field(default_factory=Counter)
    routed_pairs: int = 0
    pairs: int = 0
    seconds: float = 0.0
    grounding: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        n = max(1, self.sentences)
        chars = self.prompt_chars
        return {
            "sentences": self.sentences,
            "resumed": self.resumed,
            "llm_sentences": self.llm_sentences,
            "llm_calls": self.llm_calls,
            "cached_calls": self.cached_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "prompt_tokens_mean": self.prompt_tokens / max(1, self.llm_calls - self.cached_calls),
            "prompt_chars_mean": sum(chars) / len(chars) if chars else 0.0,
            "cost": self.cost,
            "parse_errors": self.parse_errors,
            "failed": self.failed,
            "failures": dict(self.failures.most_common(5)),
            "pairs": self.pairs,
            "routed_pairs": self.routed_pairs,
            "routed_share": self.routed_pairs / self.pairs if self.pairs else 0.0,
            "seconds": round(self.seconds, 2),
            "seconds_per_sentence": self.seconds / n,
            "grounding": dict(self.grounding),
        }


class GuideContext(Protocol):
    """What a strategy reads of the guide that runs it."""

    schema: Schema
    config: GuideConfig
    text_form: str | None
    slm: Any  # the SpanExtractor
    extraction: Any  # GuidedExtraction
    extraction_lm_config: dict[str, Any]
    choice: Any  # RelationChoice
    grounder: Any  # Grounder
