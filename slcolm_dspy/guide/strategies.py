"""One strategy per guide module: everything that differs between asking the LLM to extract a
sentence's relations (SLCoLM) and asking it multiple-choice questions about uncertain pairs
(QA4RE with filter-then-rerank) lives here, so the pipeline, the program, the outcome reader and
the optimizer ask the strategy instead of testing the module's name.

A strategy owns:
- preparation: whether sentences need retrieved demonstrations;
- prompting: `answer` turns a prepared sentence into a record and its metadata;
- accounting: `account` adds one sentence's prompts and failures to the run summary;
- offline re-reading: `goes_to_llm` and `reread` replay stored answers under another routing band
  or other answer thresholds, with no new LLM call;
- LLM share: `routed_share` estimates, from SLM scores alone, how many sentences a setting sends;
- search: which offline settings the optimizer may vary for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, ClassVar

import dspy

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.guide import render
from slcolm_dspy.guide.choice import (
    ChoiceTask,
    ChoiceThresholds,
    PairTopTwo,
    apply_choices,
    choice_prompt,
    is_routed,
    relabel_options,
    route,
    top_two,
    verify_options,
)
from slcolm_dspy.guide.faults import reply_fields

if TYPE_CHECKING:
    from slcolm_dspy.guide.settings import GuideConfig, GuideContext, Prepared, RunSummary

Meta = dict[str, Any]
# per sentence, each entity pair's two best SLM probabilities: all routing needs
TopTwos = Sequence[Sequence[tuple[float, float]]]


class GuideStrategy(ABC):
    """How one guide module asks the LLM, counts what it asked, and re-reads stored answers."""

    name: ClassVar[str]
    wants_demos: ClassVar[bool]  # preparation retrieves demonstrations for each sentence
    tunable_predictor: ClassVar[str | None]  # program attribute DSPy's optimizers may compile
    answers_have_thresholds: ClassVar[bool]  # answer thresholds are a setting of the reading

    @abstractmethod
    def answer(self, guide: GuideContext, item: Prepared, lm: Any) -> tuple[Sentence, Meta]:
        """The sentence's record after the LLM stage, and metadata for offline re-reading."""

    @abstractmethod
    def account(
        self, summary: RunSummary, guide: GuideContext, item: Prepared, meta: Meta, adapter: Any
    ) -> None:
        """Add one answered sentence's prompts, parse failures and routing counts to `summary`."""

    @abstractmethod
    def goes_to_llm(self, meta: Meta, config: GuideConfig) -> bool:
        """Whether the sentence would reach the LLM under `config`, from its stored metadata."""

    @abstractmethod
    def reread(self, slm: Sentence, llm: Sentence, meta: Meta, config: GuideConfig, routed: bool) -> Sentence:
        """The record `config` would have produced from the stored answers."""

    @abstractmethod
    def routed_share(self, pair_scores: TopTwos, config: GuideConfig) -> float:
        """The share of sentences `config` sends to the LLM, from each sentence's pairs' two best
        SLM probabilities alone."""

    @abstractmethod
    def route_options(self, searched: Sequence[bool]) -> list[bool]:
        """The values of `route_sentences` the optimizer tries for this module."""

    def threshold_options(
        self, searched: Sequence[ChoiceThresholds], current: ChoiceThresholds
    ) -> list[ChoiceThresholds]:
        """The answer thresholds the optimizer tries: the space's where answers have them."""
        return list(searched) if self.answers_have_thresholds else [current]


def _share(pair_scores: TopTwos, config: GuideConfig) -> float:
    sent = sum(1 for pairs in pair_scores if any(is_routed(b, s, config.routing) for b, s in pairs))
    return sent / max(1, len(pair_scores))


class ExtractionStrategy(GuideStrategy):
    """SLCoLM: one call per sentence with SLM hints, definitions and demonstrations; the LLM's
    triples are grounded in the sentence. With `route_sentences`, only sentences with an
    uncertain pair are asked (filter-then-rerank at sentence level)."""

    name = "extract"
    wants_demos = True
    tunable_predictor = "extraction"
    answers_have_thresholds = False

    def inputs(self, guide: GuideContext, item: Prepared) -> dict[str, str]:
        """The predictor's inputs for one sentence (also the inputs of few-shot examples)."""
        schema = guide.schema
        return {
            "sentence": item.record.form(guide.text_form),
            "slm_hints": render.hints_block(item.slm, schema),
            "definitions": render.definitions_block(item.definitions, schema),
            "demonstrations": render.demonstrations_block([(d.gold, d.slm) for d in item.demos], schema),
        }

    def prompt_chars(self, guide: GuideContext, item: Prepared, adapter: Any) -> int:
        messages = adapter.format(guide.extraction.extract.signature, [], self.inputs(guide, item))
        return sum(len(m["content"]) for m in messages if isinstance(m.get("content"), str))

    def routed(self, guide: GuideContext, item: Prepared) -> bool:
        routing = guide.config.routing
        return any(is_routed(*top_two(p.probabilities), routing) for p in item.pair_scores)

    def answer(self, guide: GuideContext, item: Prepared, lm: Any) -> tuple[Sentence, Meta]:
        if guide.config.route_sentences and not self.routed(guide, item):
            return item.slm, {"llm": False}
        meta: Meta = {"llm": True, "definitions": item.definitions, "demos": [d.gold.id for d in item.demos]}
        try:
            prediction = guide.extraction(**self.inputs(guide, item), config=guide.extraction_lm_config)
            mentions, triples = reply_fields(prediction, "entities", "relations")
        except dspy.utils.exceptions.AdapterParseError:
            meta["parse_error"] = True
            mentions, triples = [], []
        grounded, stats = guide.grounder.ground(item.record, item.slm, mentions, triples)
        meta["grounding"] = dict(stats.counts)
        return grounded, meta

    def account(
        self, summary: RunSummary, guide: GuideContext, item: Prepared, meta: Meta, adapter: Any
    ) -> None:
        if meta.get("llm", True):
            summary.prompt_chars.append(self.prompt_chars(guide, item, adapter))
        summary.parse_errors += int(meta.get("parse_error", False))
        summary.grounding.update(meta.get("grounding", {}))

    def goes_to_llm(self, meta: Meta, config: GuideConfig) -> bool:
        if not config.route_sentences:
            return bool(meta.get("llm", True))
        pairs = (PairTopTwo.from_json(p) for p in meta.get("pairs", []))
        return any(is_routed(p.best, p.second, config.routing) for p in pairs)

    def reread(self, slm: Sentence, llm: Sentence, meta: Meta, config: GuideConfig, routed: bool) -> Sentence:
        return llm if routed and meta.get("llm", True) else slm

    def routed_share(self, pair_scores: TopTwos, config: GuideConfig) -> float:
        return _share(pair_scores, config) if config.route_sentences else 1.0

    def route_options(self, searched: Sequence[bool]) -> list[bool]:
        return list(searched)


class ChoiceStrategy(GuideStrategy):
    """QA4RE: the SLM's record, with each uncertain triple verified (yes/no) and each uncertain
    pair relabelled (which type, or none) by multiple-choice questions. The LLM's option
    probabilities are stored, so thresholds and narrower bands are replayed offline."""

    name = "choice"
    wants_demos = False
    tunable_predictor = None  # its prompt is a fixed question; only thresholds are tuned
    answers_have_thresholds = True

    def tasks(self, guide: GuideContext, item: Prepared) -> list[ChoiceTask]:
        config = guide.config
        types = guide.slm.labels.relation_types
        predicted = {(r.head, r.tail, r.type) for r in item.slm.relations}
        tasks = []
        for pair in item.pair_scores:
            options = route(pair.probabilities, types, config.routing)
            if options is None:
                continue
            probs = [float(pair.probabilities[types.index(t)]) for t in options]
            best, second = top_two(pair.probabilities)
            if config.relabel:
                tasks.append(ChoiceTask(pair.head, pair.tail, options, probs, "relabel", best, second))
            if config.verify:
                for t, p in zip(options, probs, strict=True):
                    if (pair.head, pair.tail, t) in predicted:
                        tasks.append(ChoiceTask(pair.head, pair.tail, [t], [p], "verify", best, second))
        return tasks

    def answer(self, guide: GuideContext, item: Prepared, lm: Any) -> tuple[Sentence, Meta]:
        form, schema = guide.text_form, guide.schema
        sentence = item.record.form(form)
        record = item.slm
        names = [record.span(e, form) for e in record.entities]
        decisions = []
        prompt_chars: list[int] = []
        instructions = guide.choice.choose.signature.instructions
        for task in self.tasks(guide, item):
            head, tail = names[task.head], names[task.tail]
            if task.kind == "verify":
                options = verify_options(schema, task.types[0], head, tail)
            else:
                options = relabel_options(schema, task.types, head, tail)
            prompt_chars.append(len(choice_prompt(schema.prompts, instructions, sentence, options)))
            result = guide.choice(sentence=sentence, options=options, lm=lm)
            decision = {
                **asdict(task),
                "llm_probabilities": list(result.probabilities),
                "scored": result.scored,
            }
            if result.failed:
                decision["failed"] = True  # unreadable answer: apply_choices skips it
            decisions.append(decision)
        meta = {"llm": bool(decisions), "choices": decisions, "prompt_chars": prompt_chars}
        return apply_choices(record, decisions, guide.config.thresholds), meta

    def account(
        self, summary: RunSummary, guide: GuideContext, item: Prepared, meta: Meta, adapter: Any
    ) -> None:
        summary.prompt_chars.extend(meta["prompt_chars"])
        summary.parse_errors += sum(1 for c in meta["choices"] if c.get("failed"))
        summary.pairs += len(item.pair_scores)
        summary.routed_pairs += len({(c["head"], c["tail"]) for c in meta["choices"]})

    def goes_to_llm(self, meta: Meta, config: GuideConfig) -> bool:
        choices = meta.get("choices", [])
        return any(is_routed(d.get("best", 1.0), d.get("second", 0.0), config.routing) for d in choices)

    def reread(self, slm: Sentence, llm: Sentence, meta: Meta, config: GuideConfig, routed: bool) -> Sentence:
        return apply_choices(slm, meta.get("choices", []), config.thresholds, config.routing)

    def routed_share(self, pair_scores: TopTwos, config: GuideConfig) -> float:
        return _share(pair_scores, config)  # every routed pair is asked about

    def route_options(self, searched: Sequence[bool]) -> list[bool]:
        return [False]  # questions are per pair: sentence routing does not apply


STRATEGIES: Mapping[str, GuideStrategy] = {s.name: s for s in (ExtractionStrategy(), ChoiceStrategy())}


def strategy_for(config: GuideConfig) -> GuideStrategy:
    try:
        return STRATEGIES[config.module]
    except KeyError:
        raise SlcolmError(f"unknown guide module {config.module!r}; choose {', '.join(STRATEGIES)}") from None
