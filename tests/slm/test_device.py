"""Where the SLM runs: device names resolve or fail in one line, a batch moves whole, the CPU
path gives the same predictions whichever way it is asked for, and (where a GPU is visible) the
GPU gives the CPU's predictions."""

import dataclasses

import pytest
import torch
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.data.writers import write_jsonl
from slcolm_dspy.program.ray_engine import RayOptions, actor_device
from slcolm_dspy.slm.batching import collate, encode_for_inference
from slcolm_dspy.slm.extractor import SpanExtractor, resolve_device

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU is visible here")


def test_device_names_resolve_or_fail_in_one_line():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SlcolmError, match=r"^--device gpu0: not a device \(cpu, cuda, cuda:N or auto\)$"):
        resolve_device("gpu0")
    with pytest.raises(SlcolmError, match=r"^--device meta: the SLM runs on cpu or cuda$"):
        resolve_device("meta")


@no_gpu
def test_cuda_without_a_gpu_is_a_one_line_error(tiny_slm, handful, tmp_path):
    out, _ = tiny_slm
    with pytest.raises(SlcolmError, match=r"^--device cuda:1: no CUDA GPU is visible to this process$"):
        SpanExtractor.load(out, device="cuda:1")
    data = tmp_path / "in.jsonl"
    write_jsonl(handful, data)
    args = ["slm", "predict", "--model", str(out), "--data", str(data), "--out", str(tmp_path / "p.jsonl")]
    result = CliRunner().invoke(app, [*args, "--device", "cuda"])
    assert result.exit_code == 2
    assert "--device cuda: no CUDA GPU is visible" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_a_batch_moves_every_tensor_and_keeps_its_row_keys(tiny_slm, handful):
    out, _ = tiny_slm
    extractor = SpanExtractor.load(out)
    items = [encode_for_inference(s, extractor.vocab, extractor.rules) for s in handful]
    batch = collate(items, extractor.vocab, len(extractor.labels.relation_types), 512, with_labels=False)
    moved = batch.to("meta")
    tensors = 0
    for field in dataclasses.fields(batch):
        before, after = getattr(batch, field.name), getattr(moved, field.name)
        if isinstance(before, torch.Tensor):
            tensors += 1
            assert after.device.type == "meta" and after.shape == before.shape and after.dtype == before.dtype
        else:
            assert after == before  # row keys and absent labels as they were
    assert tensors >= 8 and batch.spans.device.type == "cpu"  # the original stays where it was


def test_the_cpu_gives_the_same_predictions_however_it_is_named(tiny_slm, corpus_dir, schema):
    out, _ = tiny_slm
    dev, _ = load_split(corpus_dir, "dev", schema)
    in_place = SpanExtractor.load(out).predict(dev[:40])
    assert any(r.relations for r in in_place)  # not a comparison of two empty outputs
    assert SpanExtractor.load(out, device="cpu").predict(dev[:40]) == in_place
    if not torch.cuda.is_available():
        assert SpanExtractor.load(out, device="auto").predict(dev[:40]) == in_place


def test_ray_actors_run_their_slm_on_their_gpu_share_only():
    assert actor_device(RayOptions(num_gpus=0.0)) == "cpu"
    assert actor_device(RayOptions(num_gpus=0.25)) == "cuda"


@needs_gpu
def test_the_gpu_gives_the_cpus_predictions(tiny_slm, corpus_dir, schema):
    out, _ = tiny_slm
    dev, _ = load_split(corpus_dir, "dev", schema)
    cpu = SpanExtractor.load(out, device="cpu", precision="fp32").predict(dev[:40])
    gpu = SpanExtractor.load(out, device="cuda", precision="fp32").predict(dev[:40])
    assert [[(e.start, e.end, e.type) for e in r.entities] for r in gpu] == [
        [(e.start, e.end, e.type) for e in r.entities] for r in cpu
    ]
    assert [{(x.head, x.tail, x.type) for x in r.relations} for r in gpu] == [
        {(x.head, x.tail, x.type) for x in r.relations} for r in cpu
    ]
    rep = SpanExtractor.load(out, device="cuda").representations(dev[:8])
    assert rep.sentences.shape[0] == 8
