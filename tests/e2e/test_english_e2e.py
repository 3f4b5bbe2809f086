"""End to end on a small English fixture with nothing but its schema file: train a tiny SLM,
compile with DummyLM, save, extract from running English text, evaluate. The prompts that reach
the LM are English (no CJK character)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dspy
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.guide.embed import E5Embedder
from slcolm_dspy.guide.pipeline import Guide, GuideConfig
from slcolm_dspy.merge.policy import MergePolicy
from slcolm_dspy.program import SLCoLMProgram, load_program, save_program
from slcolm_dspy.program.runner import GuideRunner
from slcolm_dspy.slm.extractor import SpanExtractor
from slcolm_dspy.slm.train import TrainConfig, train
from slcolm_dspy.teleprompt import DevF1Search, SearchSpace, as_examples

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "english"
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
runner = CliRunner()


def test_english_corpus_end_to_end(tmp_path):
    schema = load_schema(FIXTURE / "schema.toml")
    train_records, _ = load_split(FIXTURE, "train", schema)
    dev_records, _ = load_split(FIXTURE, "dev", schema)
    config = TrainConfig(
        encoder="scratch",
        epochs=40,
        batch_size=2,
        lr_encoder=5e-3,
        lr_heads=5e-3,
        warmup=0.05,
        neg_spans=0,
        neg_pairs=0,
        dropout=0.0,
        threads=1,
        max_minutes=3,
    )
    slm_dir = tmp_path / "slm"
    summary = train(train_records, dev_records, schema, slm_dir, config)
    assert summary["units"] == "word"

    first = train_records[0]
    answer = {
        "entities": [{"text": e.text, "type": schema.entity_names[e.type]} for e in first.entities],
        "relations": [{"head": h, "relation": t, "tail": tl} for t, h, tl in first.triples(None)],
    }
    guide = Guide(schema, SpanExtractor.load(slm_dir), E5Embedder(threads=1), train_records, GuideConfig())
    lm = dspy.utils.DummyLM([answer] * 50, adapter=guide_adapter(schema))
    space = SearchSpace(
        name="e2e",
        description="",
        sample=6,
        budget_calls=50,
        max_llm_share=1.0,
        prompt={"module": ["extract"], "demos": [1]},
        routing={"low": [0.1], "high": [0.9], "margin": [0.2]},
        route_sentences=[False],
        policies=["slm", "llm"],
    )
    search = DevF1Search(space, GuideRunner(guide, lm, tmp_path / "work"), schema)
    compiled = search.compile(SLCoLMProgram(schema), trainset=as_examples(dev_records))
    assert search.calls_used == len(dev_records)
    prompts = [json.dumps(entry["messages"], ensure_ascii=False) for entry in lm.history]
    assert prompts and not any(CJK.search(p) for p in prompts)
    assert "Relation types must be one of: Work_For, Live_In" in prompts[0]
    assert "Example 1" in prompts[0] and "Work_For(" in prompts[0]

    def save(directory: Path, program: SLCoLMProgram, model: str) -> None:
        retrieval = {"pool_split": None, "embedder": "e5"}
        save_program(
            directory,
            program,
            schema,
            lm={"model": model},
            slm_dir=slm_dir,
            retrieval=retrieval,
            dev_metrics={},
        )

    save(tmp_path / "prog", compiled, "dummy")
    loaded = load_program(tmp_path / "prog")
    assert loaded.schema.prompts.name == "en" and (tmp_path / "prog" / "prompts.toml").is_file()

    # running English text: two sentences on one line, split at the full stop
    text = tmp_path / "news.txt"
    text.write_text(f"{train_records[1].text} {train_records[2].text}\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    save(tmp_path / "slm-prog", SLCoLMProgram(schema, compiled.config, MergePolicy("slm")), "local")
    result = runner.invoke(
        app, ["extract", "--program", str(tmp_path / "slm-prog"), str(text), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == [train_records[1].text, train_records[2].text]
    predicted = SpanExtractor.load(slm_dir).predict(train_records)
    scores = RelationEvaluator(train_records, schema, "strict")(predicted)
    assert scores["ner_f1"] == 1.0 and scores["micro_f1"] >= 0.9
    for row, gold in zip(rows, train_records[1:3], strict=True):
        assert {(e["text"], e["type"]) for e in row["entities"]} == {(e.text, e.type) for e in gold.entities}


def guide_adapter(schema):
    from slcolm_dspy.guide.adapter import CompactJSONAdapter

    return CompactJSONAdapter(schema.prompts)
