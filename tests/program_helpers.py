"""Builders shared by the program and teleprompt tests: planted records, spaces and a DummyLM."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dspy

from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.guide.adapter import CompactJSONAdapter
from slcolm_dspy.guide.pipeline import GuideConfig
from slcolm_dspy.merge.policy import MergePolicy
from slcolm_dspy.program import GuideOutcome, SLCoLMProgram, save_program
from slcolm_dspy.teleprompt import SearchSpace

TEXT = "甲乙丙丁戊己庚辛"


def sentence(sid: str, relations: list[tuple[str, int, int]], probability: float | None = None) -> Sentence:
    """Four one-character persons in TEXT; relations between them by index."""
    ents = tuple(Entity("peo", TEXT[i], i, i + 1) for i in range(4))
    return Sentence(sid, TEXT, ents, tuple(Relation(t, h, tl, probability) for t, h, tl in relations))


def save_slm_program(schema, slm_dir: Path, where: Path) -> Path:
    """A compiled program whose policy is the SLM alone (no LLM call), saved at `where`."""
    program = SLCoLMProgram(schema, GuideConfig(module="choice", demos=0), MergePolicy("slm"))
    save_program(where, program, schema, lm={"model": "local"}, slm_dir=slm_dir, retrieval={}, dev_metrics={})
    return where


def planted_space(**overrides) -> SearchSpace:
    base = SearchSpace(
        name="planted",
        description="",
        sample=4,
        budget_calls=100,
        max_llm_share=1.0,
        prompt={"module": ["extract"], "demos": [0, 1, 2, 3]},
        routing={"low": [0.1], "high": [0.9], "margin": [0.2]},
        route_sentences=[False],
        policies=["slm", "llm", "mode-1", "per-type"],
    )
    return replace(base, **overrides)


def planted_gold() -> list[Sentence]:
    return [sentence(f"s{i}", [("父", 0, 1), ("兄弟", 2, 3)]) for i in range(6)]


def _dummy(schema, handful):
    """A DummyLM that answers every extraction with the first sentence's gold triples."""
    first = handful[0]
    form = schema.paper.form
    names = schema.entity_names
    answer = {
        "entities": [
            {"text": first.span(e, form), "type": names.get(e.type or "", "其他")} for e in first.entities
        ],
        "relations": [{"head": h, "relation": t, "tail": tl} for t, h, tl in first.triples(form)],
    }
    return dspy.utils.DummyLM([answer] * 200, adapter=CompactJSONAdapter())


class PlantedRunner:
    """A runner whose LLM is right exactly when the prompt has two demonstrations."""

    def __init__(self, gold: list[Sentence], calls_per_run: int = 10) -> None:
        self.gold = gold
        self.calls_per_run = calls_per_run
        self.runs: list[int] = []

    def __call__(self, program, records):
        demos = program.config.demos
        self.runs.append(demos)
        slm = [r.with_predictions(r.entities, r.relations[:1]) for r in records]  # finds one of two
        llm = list(records) if demos == 2 else [r.with_predictions(r.entities, ()) for r in records]
        meta = [{"llm": True, "pairs": [[0, 1, 0.5, 0.1]]} for _ in records]
        return GuideOutcome(list(records), llm, slm, meta, {}), self.calls_per_run
