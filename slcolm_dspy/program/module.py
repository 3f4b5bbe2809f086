"""`SLCoLMProgram`: the LLM stage as one `dspy.Module` that an optimizer compiles.

Its predictors (the extraction and the choice signatures, with any demonstrations an optimizer
fixed) are what DSPy saves and loads; beside them it carries the settings the optimizer chose:
the guide configuration (module, demonstrations, definitions, routing, answer thresholds) and
the merge policy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, fields, replace
from typing import Any

import dspy

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.guide.choice import ChoiceThresholds, RoutingSettings
from slcolm_dspy.guide.modules import GuidedExtraction, RelationChoice
from slcolm_dspy.guide.pipeline import Guide, GuideConfig
from slcolm_dspy.merge.policy import MergePolicy

# GuideConfig fields that change the prompts (searched with LLM calls).
PROMPT_KNOBS = ("module", "demos", "demo_source", "demo_order", "max_definitions", "top_m", "rotations")


class _Shared:
    """Holds what a program runs with (its Guide: SLM, embedder, indexes) without being copied
    when an optimizer deep-copies the program, nor saved with its state."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


class SLCoLMProgram(dspy.Module):
    """The LLM stage of SLCoLM as one DSPy module.

    `forward(sentence=...)` runs one sentence end to end (SLM hints, the guide module the program
    was compiled with, the merge policy) and returns a `dspy.Prediction` whose `record` is the
    final `Sentence`, so `dspy.Evaluate`, `dspy.Parallel` and `Module.batch` run it like any
    module. It needs a `Guide` to run with: `program.bind(guide)` (a compiled program's
    `guide_for` builds it). Batch runs over a corpus, with resume and caching, go through
    `program.runner.run_program`, which calls the same guide methods.
    """

    def __init__(
        self, schema: Schema, config: GuideConfig | None = None, policy: MergePolicy | None = None
    ) -> None:
        super().__init__()
        self.config = config or GuideConfig()
        self.policy = policy or MergePolicy("slm")
        self.extraction = GuidedExtraction(schema)
        self.choice = RelationChoice(schema, self.config.rotations)
        self._guide = _Shared()

    def bind(self, guide: Guide) -> Guide:
        """Make `guide` run this program's predictors with its settings."""
        guide.extraction = self.extraction
        guide.choice = self.choice
        guide.reconfigure(self.config)  # after the swap: it configures the modules it now holds
        self._guide.value = guide
        return guide

    def forward(self, sentence: str | Sentence, id: str | None = None) -> dspy.Prediction:
        """One sentence through the program: the SLM, then the LLM stage where the policy uses it
        (with the LM of `dspy.context` / `dspy.configure`), then the merge."""
        guide = self._guide.value
        if guide is None:
            raise SlcolmError("the program has no guide to run with: call program.bind(guide) first")
        if isinstance(sentence, Sentence):
            record = sentence.with_predictions((), ())
        else:
            key = id or hashlib.sha1(str(sentence).encode("utf-8")).hexdigest()[:12]
            record = Sentence(key, str(sentence))
        guide.reconfigure(self.config)
        (item,) = guide.prepare([record])
        meta: dict[str, Any] = {"llm": False}
        llm = item.slm
        if self.policy.kind != "slm":
            llm, meta = guide.answer(item, dspy.settings.lm)
        final = self.policy.apply_all([llm], [item.slm])[0]
        return dspy.Prediction(record=final, slm=item.slm, llm=llm, guide=meta, triples=final.triples())

    def settings(self) -> dict[str, Any]:
        return {"guide": config_to_json(self.config), "policy": self.policy.to_json()}


def config_to_json(config: GuideConfig) -> dict[str, Any]:
    return asdict(config)


# Run settings that older programs stored with what was compiled; they are given at run time now.
RUN_SETTINGS_ONCE_STORED = ("concurrency",)


def config_from_json(blob: dict[str, Any]) -> GuideConfig:
    if not isinstance(blob, dict):
        raise SlcolmError(f"guide settings: expected an object, got {type(blob).__name__}")
    try:
        blob = {k: v for k, v in blob.items() if k not in RUN_SETTINGS_ONCE_STORED}
        routing = _typed(RoutingSettings(**blob.pop("routing", {})), "routing")
        thresholds = _typed(ChoiceThresholds(**blob.pop("thresholds", {})), "thresholds")
        config = _typed(GuideConfig(**blob), "guide")
        return replace(config, routing=routing, thresholds=thresholds)
    except (TypeError, ValueError) as exc:
        raise SlcolmError(f"guide settings: {exc}") from None


def _typed(value: Any, where: str) -> Any:
    """A dataclass read from JSON, each field of the same JSON kind as its default (a routing
    band of "high" would otherwise fail much later, inside a comparison)."""
    for item in fields(value):
        default = item.default
        given = getattr(value, item.name)
        if default is MISSING or given is default:
            continue
        number = isinstance(default, int | float) and not isinstance(default, bool)
        if number and not (isinstance(given, int | float) and not isinstance(given, bool)):
            raise SlcolmError(f"{where} setting {item.name!r} must be a number, got {given!r}")
        if isinstance(default, bool | str) and not isinstance(given, type(default)):
            kind = type(default).__name__
            raise SlcolmError(f"{where} setting {item.name!r} must be a {kind}, got {given!r}")
    return value


def prompt_key(program: SLCoLMProgram) -> str:
    """A stable name for what the LLM is asked: the prompt knobs and the predictors' state."""
    config = program.config
    blob = {k: getattr(config, k) for k in PROMPT_KNOBS}
    blob["top_n"] = config.routing.top_n
    blob["probe"] = vars(config.routing)
    blob["route_sentences"] = config.route_sentences
    blob["state"] = program.dump_state()
    return hashlib.sha1(
        json.dumps(blob, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()[:10]
