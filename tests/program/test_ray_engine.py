"""`slcolm extract --documents --engine ray`: the same records as the local engine, on a local Ray
started by the test (2 CPUs, loopback only)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from program_helpers import save_slm_program
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.guide.pipeline import GuideConfig
from slcolm_dspy.merge.policy import MergePolicy
from slcolm_dspy.program import SLCoLMProgram, load_program, save_program
from slcolm_dspy.program.apply import RunOptions, extract_document_stream

ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install 'slcolm-dspy[ray]')")
from slcolm_dspy.program.ray_engine import (  # noqa: E402
    RayOptions,
    _rows,
    _waves,
    configure_data,
    extract_document_stream_ray,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


@pytest.fixture
def slm_program(schema, tiny_slm, tmp_path):
    return save_slm_program(schema, tiny_slm[0], tmp_path / "prog")


def _documents(handful) -> list[Sentence]:
    """Seven documents: punctuated ones, and unpunctuated ones long enough to be read in windows."""
    bare = "".join(c for h in handful for c in h.text if c not in "，。！？、；：「」")
    docs = [Sentence(f"p{i}", "".join(h.text for h in handful[i : i + 3])) for i in range(4)]
    docs += [Sentence(f"w{i}", (bare * 10)[i * 300 : i * 300 + 1500]) for i in range(3)]
    return docs


def test_ray_writes_the_same_records_as_the_local_engine_and_resumes(
    local_ray, slm_program, handful, tmp_path
):
    compiled = load_program(slm_program)
    docs = _documents(handful)
    # batches of 3 documents and at most 1,600 characters: [p0 p1 p2] [p3] [w0] [w1] [w2]
    local = extract_document_stream(compiled, iter(docs), tmp_path / "local.jsonl", batch=3, batch_chars=1600)
    ray_out = tmp_path / "ray.jsonl"
    options = RayOptions(actors=2, num_cpus=1, batch=3, batch_chars=1600)
    summary = extract_document_stream_ray(slm_program, iter(docs), ray_out, RunOptions(), options)
    # byte for byte: the same records, in input order, one line per document
    assert ray_out.read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    rows = [json.loads(line) for line in ray_out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [d.id for d in docs] and any(r["entities"] for r in rows)
    assert (summary.documents, summary.units, summary.windows) == (7, local.units, local.windows)
    assert summary.windows > 0 and summary.llm_calls == 0
    assert not (tmp_path / "ray.jsonl.run").exists()
    # a rerun writes nothing; a crash that tore the last line redoes that document only
    again = extract_document_stream_ray(slm_program, iter(docs), ray_out, RunOptions(), options)
    assert (again.documents, again.resumed) == (0, 7)
    lines = ray_out.read_text(encoding="utf-8").splitlines()
    ray_out.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20], encoding="utf-8")
    redone = extract_document_stream_ray(slm_program, iter(docs), ray_out, RunOptions(), options)
    assert (redone.documents, redone.resumed) == (1, 6)
    assert ray_out.read_bytes() == (tmp_path / "local.jsonl").read_bytes()


def test_ray_runs_a_guided_program_against_a_server_on_the_wire_like_the_local_engine(
    local_ray, schema, tiny_slm, handful, tmp_path
):
    """The LLM stage inside the actors: each actor reaches the program's LLM (here a loopback
    OpenAI-compatible server), and the records, calls and tokens are the local engine's."""
    from wire_server import WireServer, chat_reply

    from slcolm_dspy.guide.choice import RoutingSettings

    routing = RoutingSettings(low=0.0, high=1.01, top_n=2)  # every pair asked
    config = GuideConfig(module="choice", routing=routing, demos=0)
    where = tmp_path / "guided"
    save_program(
        where,
        SLCoLMProgram(schema, config, MergePolicy("llm")),
        schema,
        lm={"model": "local"},
        slm_dir=tiny_slm[0],
        retrieval={},
        dev_metrics={},
    )
    docs = _documents(handful)[:4]
    letter_b = [("B", -0.1), ("A", -2.5), ("C", -3.0), ("D", -4.0)]
    with WireServer(lambda r, n: chat_reply("B", logprobs=letter_b)) as server:
        run = RunOptions(lm="openai/wire", api_base=server.api_base)
        local = extract_document_stream(
            load_program(where), iter(docs), tmp_path / "local.jsonl", run, batch=2
        )
        local_calls = len(server.requests)
        on_ray = extract_document_stream_ray(
            where, iter(docs), tmp_path / "ray.jsonl", run, RayOptions(actors=2, num_cpus=1, batch=2)
        )
        ray_calls = len(server.requests) - local_calls
    assert local.llm_calls == local_calls > 0 and on_ray.llm_calls == ray_calls == local_calls
    assert on_ray.prompt_tokens == local.prompt_tokens > 0
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()


def test_the_cli_runs_ray_into_shards_and_refuses_it_for_sentences(local_ray, slm_program, handful, tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in _documents(handful)))
    base = ["extract", "--program", str(slm_program), str(docs)]
    local = runner.invoke(app, [*base, "--out", str(tmp_path / "local"), "--documents"])
    assert local.exit_code == 0, local.output
    on_ray = runner.invoke(app, [*base, "--out", str(tmp_path / "ray"), "--documents", "--engine", "ray"])
    assert on_ray.exit_code == 0, on_ray.output
    shards = sorted(p.name for p in (tmp_path / "local").glob("shard-*.jsonl"))
    assert shards and shards == sorted(p.name for p in (tmp_path / "ray").glob("shard-*.jsonl"))
    for name in shards:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    refused = runner.invoke(app, [*base, "--out", str(tmp_path / "s.jsonl"), "--engine", "ray"])
    assert refused.exit_code == 2 and "add --documents" in refused.stderr
    wrong = runner.invoke(
        app, [*base, "--out", str(tmp_path / "s.jsonl"), "--documents", "--engine", "spark"]
    )
    assert wrong.exit_code == 2 and "--engine must be local or ray" in wrong.stderr


def test_waves_hold_whole_batches_up_to_a_count_and_a_character_budget():
    batches = [[Sentence(f"{b}.{i}", "x" * 10) for i in range(2)] for b in range(7)]  # 20 chars each
    by_count = list(_waves(iter(batches), max_batches=3, max_chars=10_000))
    assert [len(w) for w in by_count] == [3, 3, 1]
    by_chars = list(_waves(iter(batches), max_batches=100, max_chars=50))
    assert [len(w) for w in by_chars] == [2, 2, 2, 1]
    # a batch larger than the budget still goes, alone: the budget never drops documents
    assert [len(w) for w in _waves(iter(batches), max_batches=100, max_chars=5)] == [1] * 7
    assert [b for w in by_chars for b in w] == batches


def test_the_ray_driver_runs_the_cli_without_importing_torch(local_ray, slm_program, handful, tmp_path):
    """Only the actors run the SLM: the driver of `slcolm extract --engine ray` (here a separate
    process joining the test's Ray) writes every record without importing torch, seconds of a
    short run's start-up and hundreds of MB it would hold for nothing."""
    import subprocess
    import sys

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in _documents(handful)))
    out = tmp_path / "ray.jsonl"
    command = [
        *["extract", "--program", str(slm_program), str(docs), "--out", str(out)],
        *["--documents", "--engine", "ray", "--ray-address", ray.get_runtime_context().gcs_address],
    ]
    driver = (
        "import sys\n"
        "from slcolm_dspy.cli.app import app\n"
        f"app({command!r}, standalone_mode=False)\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torch imported: False" in done.stdout
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == [
        d.id for d in _documents(handful)
    ]


def test_each_row_reaches_the_driver_before_the_actor_finishes_the_next(local_ray):
    """The driver writes a batch's records as soon as the actor is done with it: with `iter_rows`
    they came a batch late (its prefetch), so a run killed then lost a finished batch."""

    class SlowBatches:  # defined here: Ray ships it to the actor by value
        def __call__(self, rows):
            time.sleep(2.0)
            return {"i": [str(i) for i in rows["i"]], "done": [repr(time.time())] * len(rows["i"])}

    configure_data(ray)  # in input order, as the engine runs it
    dataset = ray.data.from_items([{"i": i} for i in range(4)], override_num_blocks=4).map_batches(
        SlowBatches,
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=1,
    )
    received = [(row, time.time()) for row in _rows(dataset)]
    assert [row["i"] for row, _ in received] == ["0", "1", "2", "3"]
    done = [float(row["done"]) for row, _ in received]
    # The actor may run the rows in another order (Ray Data sometimes sends it the second block
    # first); in input order, row k can go once it and every row before it are done, and it must
    # reach the driver before the actor finishes any row after that.
    for k, (_, arrived) in enumerate(received):
        ready = max(done[: k + 1])
        later = [d for d in done if d > ready]
        assert not later or arrived < min(later), (k, received, done)


def test_a_moved_program_finds_its_slm_on_both_engines_and_a_lost_one_is_one_line(
    local_ray, schema, tiny_slm, handful, tmp_path, monkeypatch
):
    """Compiled with the SLM named relative to the folder compile ran in (`runs/slm`), then the
    whole `runs/` folder moved and the program run from elsewhere: both engines find the SLM
    beside the program. With the SLM gone, both print the same one line (no RayTaskError)."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_slm[0], tmp_path / "runs" / "slm")
    save_slm_program(schema, Path("runs/slm"), Path("runs/programs/default"))
    shutil.move(tmp_path / "runs", tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in _documents(handful)))
    base = [
        "extract",
        "--program",
        str(tmp_path / "moved" / "programs" / "default"),
        str(docs),
        "--documents",
    ]
    local = runner.invoke(app, [*base, "--out", "local.jsonl"])
    assert local.exit_code == 0, local.output
    on_ray = runner.invoke(app, [*base, "--out", "ray.jsonl", "--engine", "ray"])
    assert on_ray.exit_code == 0, on_ray.output
    assert (elsewhere / "ray.jsonl").read_bytes() == (elsewhere / "local.jsonl").read_bytes()
    shutil.rmtree(tmp_path / "moved" / "slm")
    lines = []
    for engine in ("local", "ray"):
        result = runner.invoke(app, [*base, "--out", f"{engine}-2.jsonl", "--engine", engine])
        assert (
            result.exit_code == 2 and "Traceback" not in result.output and "RayTaskError" not in result.output
        )
        lines.append(result.stderr.strip().splitlines()[-1])
    assert lines[0] == lines[1] and lines[0].startswith("error: the program's SLM is not at ")
