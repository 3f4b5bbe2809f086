"""DevF1Search, the optimizer: candidates scored by corpus F1 on dev, the call budget and LLM share, and DSPy's own optimizers (LabeledFewShot, GEPA) inside it."""

from __future__ import annotations

import dspy
import pytest
from program_helpers import PlantedRunner, _dummy, planted_gold, planted_space

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.guide.adapter import CompactJSONAdapter
from slcolm_dspy.guide.embed import E5Embedder
from slcolm_dspy.guide.pipeline import Guide, GuideConfig
from slcolm_dspy.program import SLCoLMProgram, load_program, save_program
from slcolm_dspy.program.runner import GuideRunner
from slcolm_dspy.slm.extractor import SpanExtractor
from slcolm_dspy.teleprompt import DevF1Search, as_examples


def test_optimizer_picks_the_best_planted_candidate(schema):
    gold = planted_gold()
    planted = PlantedRunner(gold)
    search = DevF1Search(planted_space(), planted, schema)
    compiled = search.compile(SLCoLMProgram(schema), trainset=as_examples(gold))
    assert planted.runs[:4] == [0, 1, 2, 3]  # every setting tried once (coordinate search)
    assert compiled.config.demos == 2 and compiled.policy.kind in ("llm", "mode-1", "per-type")
    chosen = [c for c in search.candidates if c.chosen]
    assert len(chosen) == 1 and chosen[0].macro_f1 == max(c.macro_f1 for c in search.candidates) == 1.0
    assert search.calls_used == 40


def test_optimizer_stops_at_the_call_budget_and_respects_the_llm_share(schema):
    gold = planted_gold()
    planted = PlantedRunner(gold, calls_per_run=10)
    search = DevF1Search(planted_space(budget_calls=15), planted, schema)
    compiled = search.compile(SLCoLMProgram(schema), trainset=as_examples(gold))
    assert planted.runs == [0, 1] and compiled.config.demos in (0, 1)  # the third run would pass 15
    # every sentence reaches the LLM in this space: with a 40% cap only the SLM is a candidate
    capped = DevF1Search(planted_space(max_llm_share=0.4), PlantedRunner(gold), schema)
    assert capped.compile(SLCoLMProgram(schema), trainset=as_examples(gold)).policy.kind == "slm"
    assert {c.policy.kind for c in capped.candidates} == {"slm"}
    # ... and the refused settings are kept with their share, so the CLI can say why
    assert capped.refused and all(share == 1.0 for _, _, share in capped.refused)
    uncapped = DevF1Search(planted_space(max_llm_share=1.0), PlantedRunner(gold), schema)
    uncapped.compile(SLCoLMProgram(schema), trainset=as_examples(gold))
    assert uncapped.refused == []
    # the same cap with the share estimated elsewhere (the whole dev split): the LLM is allowed
    elsewhere = DevF1Search(
        planted_space(max_llm_share=0.4), PlantedRunner(gold), schema, share_of=lambda c: 0.3
    )
    assert elsewhere.compile(SLCoLMProgram(schema), trainset=as_examples(gold)).policy.kind != "slm"


def test_settings_over_the_share_cap_are_refused_before_any_llm_call(schema):
    gold = planted_gold()
    # the SLM's scores send 90% of dev to the LLM under every band: nothing is run at all
    planted = PlantedRunner(gold)
    hopeless = DevF1Search(planted_space(max_llm_share=0.35), planted, schema, share_of=lambda c: 0.9)
    with pytest.raises(SlcolmError, match=r"the narrowest sends 90% .*no LLM call was made"):
        hopeless.compile(SLCoLMProgram(schema), trainset=as_examples(gold))
    assert planted.runs == [] and hopeless.calls_used == 0
    # one module fits and the other does not: the other is refused without a run, and said so
    said: list[str] = []
    planted = PlantedRunner(gold)
    space = planted_space(max_llm_share=0.35, prompt={"module": ["choice", "extract"], "demos": [0, 2]})
    mixed = DevF1Search(
        space,
        planted,
        schema,
        share_of=lambda c: 0.9 if c.module == "choice" else 0.2,
        progress=said.append,
    )
    compiled = mixed.compile(SLCoLMProgram(schema), trainset=as_examples(gold))
    assert compiled.config.module == "extract" and planted.runs == [0, 2]  # extract, twice; choice never
    assert any("refused before any LLM call" in line and "90%" in line for line in said)
    assert [share for _, _, share in mixed.refused] == [0.9]


def test_dspy_labeled_few_shot_fixes_demonstrations_in_the_saved_program(schema, tiny_slm, handful, tmp_path):
    slm_dir = tiny_slm[0]
    guide = Guide(schema, SpanExtractor.load(slm_dir), E5Embedder(threads=1), handful, GuideConfig())
    space = planted_space(
        prompt={"module": ["extract"], "demos": [0]},
        policies=["slm", "llm"],
        dspy_optimizer="labeled",
        dspy_demos=2,
    )
    lm = _dummy(schema, handful)
    search = DevF1Search(space, GuideRunner(guide, lm, tmp_path / "work"), schema)
    compiled = search.compile(SLCoLMProgram(schema), trainset=as_examples(handful))
    assert search.calls_used == 2 * len(handful)  # the base run and the run with fixed demonstrations
    assert len(list((tmp_path / "work").glob("run-*"))) == 2
    # whichever the search chose, fixed demonstrations travel in program.json: save the one with
    # them (the optimizer's own LabeledFewShot on the same trainset) and load it back
    fixed = dspy.LabeledFewShot(k=2).compile(SLCoLMProgram(schema), trainset=as_examples(handful))
    assert len(fixed.extraction.extract.demos) == 2
    save_program(
        tmp_path / "prog", fixed, schema, lm={"model": "dummy"}, slm_dir=slm_dir, retrieval={}, dev_metrics={}
    )
    loaded = load_program(tmp_path / "prog").program.extraction.extract.demos

    def plain(demo):
        return demo.toDict() if hasattr(demo, "toDict") else dict(demo)

    assert [plain(d)["sentence"] for d in loaded] == [
        plain(d)["sentence"] for d in fixed.extraction.extract.demos
    ]
    # the search kept the run whose best candidate ranked first, demonstrations and all
    chosen = next(c for c in search.candidates if c.chosen)
    assert chosen.rank == max(c.rank for c in search.candidates)
    assert len(compiled.extraction.extract.demos) == len(search.chosen_run.extraction.extract.demos)
    run_of = {c.number: c.run_calls for c in search.candidates}
    assert sum(1 for calls in run_of.values() if calls) == 2  # two runs, each counted once
    # either way, the run with demonstrations showed them to the LLM: the gold of other sentences
    prompts = ["\n".join(str(m.get("content")) for m in h["messages"]) for h in lm.history]
    forms = [r.form(schema.paper.form) for r in handful]
    seen = [sum(f in p for f in forms) for p in prompts]
    assert seen[: len(handful)] == [1] * len(handful)  # the base run: the query alone
    assert all(n >= 2 for n in seen[len(handful) :])  # then the query beside the fixed demonstrations


class PromptReadingLM(dspy.utils.DummyLM):
    """A DummyLM whose answer depends on the whole prompt (system message included), as a real
    model's does: `respond(prompt_text)` returns the fields to answer with."""

    def __init__(self, respond, adapter) -> None:
        super().__init__([], adapter=adapter)
        owner, engine = self, self._engine_spec
        from dspy.lm15 import Message, Response, TextPart, Usage

        def reply(messages):
            text = "\n".join(str(m.get("content")) for m in messages)
            output = owner._format_answer_fields(respond(text))
            return Response(
                id=None,
                model="dummy",
                message=Message.assistant([TextPart(output)]),
                finish_reason="stop",
                usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0),
            )

        engine._complete_messages = reply


def test_gepa_rewrites_the_instruction_and_the_search_keeps_it_by_corpus_f1(
    schema, tiny_slm, handful, tmp_path
):
    """The hosted preset's stock DSPy optimizer: GEPA reflects on per-sentence feedback and
    proposes an instruction; the search re-scores GEPA's candidates by corpus F1 of the merged
    output and keeps the instruction only because it wins there."""
    form = schema.paper.form
    names = schema.entity_names
    marker = "Copy every relation the sentence states, exactly."

    def gold_answer(record):
        return {
            "entities": [
                {"text": record.span(e, form), "type": names.get(e.type or "", "其他")}
                for e in record.entities
            ],
            "relations": [{"head": h, "relation": t, "tail": tl} for t, h, tl in record.triples(form)],
        }

    reflections = []

    def respond(prompt):
        if "examples_with_feedback" in prompt:  # GEPA's reflection on the feedback
            reflections.append(prompt)
            return {"new_instruction": marker}
        if marker not in prompt:
            return {"entities": [], "relations": []}  # the shipped instruction: a model that finds nothing
        # the sentence asked about is the last of the handful the prompt quotes (demos are off)
        record = max((r for r in handful if r.form(form) in prompt), key=lambda r: prompt.rfind(r.form(form)))
        return gold_answer(record)

    lm = PromptReadingLM(respond, CompactJSONAdapter(schema.prompts))
    guide = Guide(schema, SpanExtractor.load(tiny_slm[0]), E5Embedder(threads=1), handful, GuideConfig())
    space = planted_space(
        prompt={"module": ["extract"], "demos": [0]},
        policies=["llm"],  # the tiny SLM is perfect on its own training sentences: leave it out
        dspy_optimizer="gepa",
        gepa_metric_calls=30,
        gepa_candidates=2,
    )
    search = DevF1Search(space, GuideRunner(guide, lm, tmp_path / "work"), schema)
    compiled = search.compile(SLCoLMProgram(schema), trainset=as_examples(handful))
    assert reflections and "missed (head, relation, tail)" in reflections[0]  # our feedback reached it
    assert compiled.extraction.extract.signature.instructions == marker
    assert compiled.policy.kind == "llm"
    # GEPA's candidate had its own guide run on the dev sample, scored like every other row
    assert len(list((tmp_path / "work").glob("run-*"))) == 2
    first, second = compiled.candidates
    assert (first.macro_f1, second.macro_f1) == (0.0, 1.0) and second.chosen
    assert first.run_calls == second.run_calls == len(handful)
    # GEPA's own evaluations and reflections are LLM calls too, counted against the budget
    assert search.calls_used == len(lm.history) > 2 * len(handful) + len(reflections)
