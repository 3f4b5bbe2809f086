"""Choosing what to annotate: a planted uncertain tail sentence beats confident head ones, the
budget spreads over tail types, near-duplicates are passed over, and the whole loop runs from
the command line with a real SLM: select -> export -> merge -> retrain-ready split -> compare."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
from typer.testing import CliRunner

from slcolm_dspy.annotate.select import SelectSettings, select
from slcolm_dspy.cli.app import app
from slcolm_dspy.core.records import Entity, Sentence
from slcolm_dspy.slm.extractor import PairScores

runner = CliRunner()
TYPES = ("任职", "父", "旧臣")
TRAIN = {"任职": 900, "父": 60, "旧臣": 3}


def _setting(schema):
    """Every other type a head type, and no trigger words: the scripted probabilities decide."""
    return dataclasses.replace(schema, triggers={}), {t: 500 for t in schema.relation_types} | TRAIN


@dataclass
class _Labels:
    relation_types: tuple[str, ...] = TYPES


class ScriptedSLM:
    """Pair probabilities written out per sentence id: the ranking logic alone is under test (the
    CLI test below runs a trained SLM)."""

    labels = _Labels()

    def __init__(self, probabilities: dict[str, list[float]]) -> None:
        self.probabilities = probabilities

    def thresholds(self) -> np.ndarray:
        return np.full(len(TYPES), 0.4)

    def predict_with_pair_scores(self, records):
        out = []
        for r in records:
            entities = (Entity("PER", r.text[0], 0, 1), Entity("PER", r.text[1], 1, 2))
            pairs = [PairScores(0, 1, np.array(self.probabilities[r.id]))]
            out.append((r.with_predictions(entities, ()), pairs))
        return out


class ScriptedVectors:
    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def passages(self, texts):
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def _pool(n: int) -> list[Sentence]:
    return [Sentence(f"s{i}", f"甲乙{i}") for i in range(n)]


def test_a_planted_uncertain_tail_sentence_beats_confident_head_ones(schema):
    pool = _pool(4)
    slm = ScriptedSLM(
        {
            "s0": [0.99, 0.01, 0.0],  # a sure 任职 (head): nothing to learn
            "s1": [0.98, 0.02, 0.01],
            "s2": [0.97, 0.0, 0.02],
            "s3": [0.05, 0.02, 0.36],  # maybe 旧臣 (3 in train), near its threshold
        }
    )
    schema, counts = _setting(schema)
    chosen = select(pool, slm, schema, counts, SelectSettings(budget=2))
    assert chosen[0].record.id == "s3" and chosen[0].rank == 1
    why = [r["why"] for r in chosen[0].reasons]
    assert "may hold 旧臣 (a tail type): the SLM gives a pair 0.36" in why[0]
    assert "unsure of 甲 → 乙 as 旧臣 (0.36 against its threshold 0.4)" in why[1]
    assert chosen[0].record.entities  # the SLM's pre-annotation rides along


def test_the_budget_spreads_over_tail_types_and_skips_near_duplicates(schema):
    pool = _pool(4)
    slm = ScriptedSLM(
        {
            "s0": [0.0, 0.0, 0.9],  # 旧臣
            "s1": [0.0, 0.0, 0.9],  # 旧臣 again, and a near-duplicate of s0
            "s2": [0.0, 0.0, 0.8],  # 旧臣 again
            "s3": [0.0, 0.9, 0.0],  # 父: commoner, but the tail's other type
        }
    )
    vectors = ScriptedVectors({"甲乙0": [1, 0], "甲乙1": [1, 0.01], "甲乙2": [0, 1], "甲乙3": [0.7, 0.7]})
    schema, counts = _setting(schema)
    chosen = select(pool, slm, schema, counts, SelectSettings(budget=3, spread=0.1), vectors)
    ids = [c.record.id for c in chosen]
    assert ids[0] == "s0" and "s1" not in ids  # the duplicate is passed over
    assert ids[1] == "s3"  # after one 旧臣, the weight has gone round to 父
    assert ids == ["s0", "s3", "s2"]


def test_select_export_merge_compare_from_the_command_line(schema, tiny_slm, handful, corpus_dir, tmp_path):
    slm = tiny_slm[0]
    dev = [json.dumps({"id": f"pool-{i}", "text": r.text}, ensure_ascii=False) for i, r in enumerate(handful)]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("\n".join(dev) + "\n", encoding="utf-8")
    chosen = tmp_path / "chosen.jsonl"
    result = runner.invoke(
        app,
        ["annotate", "select", "--pool", str(pool), "--slm", str(slm), "--out", str(chosen), "--budget", "3"],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in chosen.read_text(encoding="utf-8").splitlines()]
    assert [x["selection"]["rank"] for x in lines] == [1, 2, 3]
    assert all(x["selection"]["reasons"] for x in lines)
    folder = tmp_path / "to-correct"
    result = runner.invoke(app, ["annotate", "export", str(chosen), "--out", str(folder)])
    assert result.exit_code == 0, result.output
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in handful[:2]), encoding="utf-8"
    )
    grown = tmp_path / "grown.jsonl"
    result = runner.invoke(app, ["annotate", "merge", str(folder), "--into", str(train), "--out", str(grown)])
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in grown.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [handful[0].id, handful[1].id, *(x["id"] for x in lines)]
    provenance = [json.loads(x) for x in (tmp_path / "grown.jsonl.provenance.jsonl").read_text().splitlines()]
    assert [p["id"] for p in provenance] == [x["id"] for x in lines] and all(
        p["round"] == "1" for p in provenance
    )
    again = runner.invoke(
        app, ["annotate", "merge", str(folder), "--into", str(grown), "--out", str(tmp_path / "g2.jsonl")]
    )
    assert again.exit_code == 2 and "is already in the train split" in again.output
    result = runner.invoke(
        app, ["annotate", "compare", "--before", str(slm), "--after", str(slm), "--data", str(corpus_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "tail_macro_f1:" in result.output and "train before" in result.output
