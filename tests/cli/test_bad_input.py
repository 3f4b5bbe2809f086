"""The one-line contract, case by case: every bad file, field, path or program directory a user
can hand the CLI gives one line that names the file (and line or record) and the problem, exit
2, no traceback. The cases are the ones issue 11 found, plus their neighbours; a Hypothesis fuzz
test drives the readers with generated malformed records of every format."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.data.readers import read_records

runner = CliRunner()
TEXT = "董卓以其弟旻爲左將軍"
ENT = [
    {"type": "PER", "start": 0, "end": 2, "text": "董卓"},
    {"type": "PER", "start": 5, "end": 6, "text": "旻"},
]
REL = [{"type": "父", "head": 0, "tail": 1}]


def line(**fields) -> dict:
    return {"id": "s1", "text": TEXT, "entities": ENT, "relations": REL} | fields


def jsonl(*records) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


# name -> (file bytes, words the one line must contain). Each is read by `data convert`,
# `evaluate --pred/--gold` and `data stats`-style readers through read_records.
RECORD_CASES: dict[str, tuple[bytes, str]] = {
    "non-utf8 bytes in jsonl": (jsonl(line()) + b'{"id": "s2", "text": "\xff\xfe"}\n', "line 2: not UTF-8"),
    "text is a number with variants": (jsonl(line(text=5, variants={"simplified": "x"})), "'text' must be"),
    "text is a number": (jsonl(line(text=12)), "'text' must be"),
    "text is empty": (jsonl(line(text="")), "'text' must be"),
    "lone surrogate in text": (b'{"id": "s", "text": "ab\\ud800cd"}\n', "unpaired surrogate"),
    "lone surrogate in variant": (
        b'{"id": "s", "text": "abcd", "variants": {"simplified": "ab\\udc00d"}}\n',
        "unpaired surrogate",
    ),
    "confidence is a word": (
        jsonl(line(entities=[ENT[0] | {"confidence": "high"}, ENT[1]])),
        "confidence must be a number",
    ),
    "confidence NaN": (
        jsonl(line(entities=[ENT[0] | {"confidence": float("nan")}, ENT[1]])),
        "confidence must lie in [0, 1]",
    ),
    "confidence Infinity": (
        jsonl(line(entities=[ENT[0] | {"confidence": float("inf")}, ENT[1]])),
        "must lie in [0, 1]",
    ),
    "confidence negative": (
        jsonl(line(entities=[ENT[0] | {"confidence": -0.2}, ENT[1]])),
        "must lie in [0, 1]",
    ),
    "confidence above one": (
        jsonl(line(entities=[ENT[0] | {"confidence": 1.5}, ENT[1]])),
        "must lie in [0, 1]",
    ),
    "probability NaN": (
        jsonl(line(relations=[REL[0] | {"probability": float("nan")}])),
        "probability must lie",
    ),
    "probability negative": (jsonl(line(relations=[REL[0] | {"probability": -1}])), "probability must lie"),
    "probability a word": (jsonl(line(relations=[REL[0] | {"probability": "likely"}])), "must be a number"),
    "self relation": (jsonl(line(relations=[{"type": "父", "head": 0, "tail": 0}])), "with itself"),
    "duplicate key": (
        b'{"id": "s1", "text": "\xe8\x91\xa3\xe5\x8d\x93", "text": "x", "entities": [], "relations": []}\n',
        "duplicate key 'text'",
    ),
    "nested 100000 deep": (b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    "offset with 5000 digits": (
        b'{"id": "s", "text": "ab", "entities": [{"type": "PER", "start": '
        + b"9" * 5000
        + b', "end": 1}]}\n',
        "line 1",
    ),
    "entities a number": (jsonl(line(entities=3)), "'entities' must be a list"),
    "relations an object": (jsonl(line(relations={"a": 1})), "'relations' must be a list"),
    "relation head out of range": (
        jsonl(line(relations=[{"type": "父", "head": 0, "tail": 7}])),
        "out of range",
    ),
    "relation head a string": (
        jsonl(line(relations=[{"type": "父", "head": "0", "tail": 1}])),
        "out of range",
    ),
    "unknown relation type": (
        jsonl(line(relations=[{"type": "friend", "head": 0, "tail": 1}])),
        "unknown relation",
    ),
    "entity offsets reversed": (
        jsonl(line(entities=[ENT[0] | {"start": 2, "end": 0}, ENT[1]])),
        "out of range",
    ),
    "entity offsets floats": (jsonl(line(entities=[ENT[0] | {"start": 0.0}, ENT[1]])), "must be integers"),
    "entity text mismatch": (jsonl(line(entities=[ENT[0] | {"text": "曹操"}, ENT[1]])), "does not match"),
    "entity not an object": (jsonl(line(entities=["董卓", ENT[1]])), "not an object"),
    "line is a list": (b"[1, 2]\n", "not a JSON object"),
    "invalid json": (b'{"id": "s1", "text": \n', "invalid JSON"),
    "duplicate id": (jsonl(line(), line()), "duplicate id"),
    "variants wrong length": (jsonl(line(variants={"simplified": "短"})), "'variants'"),
    "torn utf-8 at the end": (jsonl(line()) + '{"id": "s2", "text": "董'.encode()[:-1], "line 2"),
}

SPERT_CASES: dict[str, tuple[bytes, str]] = {
    "spert tokens hold a number": (
        json.dumps([{"tokens": ["a", "b", 3], "entities": [], "relations": []}]).encode(),
        "'tokens' must be strings",
    ),
    "spert tokens an object": (
        json.dumps([{"tokens": {"a": 1}, "entities": [], "relations": []}]).encode(),
        "'tokens'",
    ),
    "spert record a string": (json.dumps(["tokens"]).encode(), "not an object"),
    "spert token offsets out of range": (
        json.dumps(
            [{"tokens": ["a", "b"], "entities": [{"type": "PER", "start": 0, "end": 9}], "relations": []}]
        ).encode(),
        "token offsets",
    ),
    "spert not utf-8": (b'[{"tokens": "\xff"}]', "not UTF-8"),
}

REPLAY_CASES: dict[str, tuple[str, bytes, str]] = {
    "replay slm confidence a word": (
        "slm.jsonl",
        jsonl(
            {
                "text": "董卓",
                "entities": [{"type": "人物", "span": "董卓", "confidence": "high"}],
                "relations": [],
            }
        ),
        "confidence must be a number",
    ),
    "replay slm probability a word": (
        "slm.jsonl",
        jsonl(
            {
                "text": "董卓旻",
                "entities": [{"type": "人物", "span": "董卓"}, {"type": "人物", "span": "旻"}],
                "relations": [{"type": "父", "head": "董卓", "tail": "旻", "probability": "high"}],
            }
        ),
        "probability must be a number",
    ),
    "replay slm entities a number": (
        "slm.jsonl",
        jsonl({"text": "董卓", "entities": 5, "relations": []}),
        "must be",
    ),
    "replay gold spans a number": (
        "gold.jsonl",
        jsonl({"text": "董卓", "entities": {"人物": 5}, "relations": []}),
        "must be a list of strings",
    ),
    "replay gold relations a number": (
        "gold.jsonl",
        jsonl({"text": "董卓", "entities": {"人物": ["董卓"]}, "relations": 4}),
        "'relations' must be a list",
    ),
}


# every case `data convert` reads: (file name, bytes, words the line must contain)
CONVERT_CASES = {
    **{name: ("bad.jsonl", blob, words) for name, (blob, words) in RECORD_CASES.items()},
    **{name: ("bad.json", blob, words) for name, (blob, words) in SPERT_CASES.items()},
}


@pytest.mark.parametrize("case", sorted(CONVERT_CASES))
def test_bad_records_are_one_line(case, tmp_path):
    name, blob, words = CONVERT_CASES[case]
    path = tmp_path / name
    path.write_bytes(blob)
    result = runner.invoke(app, ["data", "convert", str(path), "--out", str(tmp_path / "out.jsonl")])
    assert_one_line_error(result, str(path), words)


@pytest.mark.parametrize(
    "case", ["non-utf8 bytes in jsonl", "confidence NaN", "self relation", "invalid json"]
)
def test_skip_bad_skips_and_counts_every_kind(case, tmp_path):
    blob, _ = RECORD_CASES[case]
    path = tmp_path / "bad.jsonl"
    good = {"id": "ok", "text": TEXT, "entities": [], "relations": []}
    path.write_bytes(jsonl(good) + blob)
    records, report = read_records(path, _schema(), skip_bad=True)
    assert next(r.id for r in records) == "ok" and len(report.skipped) >= 1
    result = runner.invoke(
        app, ["data", "convert", str(path), "--out", str(tmp_path / "o.jsonl"), "--skip-bad"]
    )
    assert result.exit_code == 0 and "skipped" in result.output


@pytest.mark.parametrize("case", sorted(REPLAY_CASES))
def test_bad_replay_style_records_are_one_line(case, tmp_path):
    name, blob, words = REPLAY_CASES[case]
    path = tmp_path / name
    path.write_bytes(blob)
    gold = tmp_path / "g.jsonl"
    gold.write_bytes(jsonl({"id": "g", "text": "董卓", "entities": [], "relations": []}))
    result = runner.invoke(app, ["evaluate", "--pred", str(path), "--gold", str(gold)])
    assert_one_line_error(result, str(path), words)


def test_replay_expected_json_that_is_a_list(replay_dir, tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(replay_dir, pack)
    (pack / "expected.json").write_text("[1, 2]", encoding="utf-8")
    result = runner.invoke(app, ["replay", "--pack", str(pack)])
    assert_one_line_error(result, "expected.json", "JSON object")


PATH_CASES = {
    "json into a missing folder is created": None,
    "out is a directory": "is a folder",
    "out under a file": "is a file, not a folder",
}


@pytest.mark.parametrize("case", sorted(PATH_CASES))
def test_output_paths(case, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(jsonl(line()))
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    target = {
        "json into a missing folder is created": tmp_path / "new" / "deeper" / "out.jsonl",
        "out is a directory": tmp_path,
        "out under a file": blocker / "out.jsonl",
    }[case]
    result = runner.invoke(app, ["data", "convert", str(source), "--out", str(target)])
    words = PATH_CASES[case]
    if words is None:
        assert result.exit_code == 0 and target.is_file()
    else:
        assert_one_line_error(result, str(target), words)


def test_stats_json_into_a_missing_folder(corpus_dir, tmp_path):
    target = tmp_path / "a" / "b" / "stats.json"
    result = runner.invoke(app, ["data", "stats", "--data", str(corpus_dir), "--json", str(target)])
    assert result.exit_code == 0 and json.loads(target.read_text("utf-8"))["splits"]


def test_input_that_is_a_directory(tmp_path):
    result = runner.invoke(app, ["data", "convert", str(tmp_path), "--out", str(tmp_path / "o.jsonl")])
    assert_one_line_error(result, str(tmp_path), "directory")


def test_missing_input_file(tmp_path):
    result = runner.invoke(
        app, ["data", "convert", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")]
    )
    assert_one_line_error(result, "not found")


def test_fetch_url_template_with_an_unknown_field(tmp_path):
    result = runner.invoke(
        app, ["data", "fetch", "chisre", "--data", str(tmp_path), "--url-template", "https://x/{nope}/{file}"]
    )
    assert_one_line_error(result, "{nope}", "known fields")


# ---- program directories ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def program_dir(tmp_path_factory, tiny_slm, schema):
    """A real compiled program directory (SLM alone), written by save_program."""
    from slcolm_dspy.guide.pipeline import GuideConfig
    from slcolm_dspy.merge.policy import MergePolicy
    from slcolm_dspy.program.artifact import save_program
    from slcolm_dspy.program.module import SLCoLMProgram

    out = tmp_path_factory.mktemp("program")
    program = SLCoLMProgram(schema, GuideConfig(module="choice", demos=0), MergePolicy("slm"))
    save_program(
        out, program, schema, lm={"model": "local"}, slm_dir=tiny_slm[0], retrieval={}, dev_metrics={}
    )
    return out


def _broken(program_dir: Path, tmp_path: Path, name: str, mutate) -> Path:
    target = tmp_path / "program"
    shutil.copytree(program_dir, target)
    path = target / name
    blob = json.loads(path.read_text("utf-8"))
    path.write_text(json.dumps(mutate(blob)), encoding="utf-8")
    return target


PROGRAM_CASES = {
    "manifest without schema": (
        "manifest.json",
        lambda b: {k: v for k, v in b.items() if k != "schema"},
        "'schema'",
    ),
    "manifest is a list": ("manifest.json", lambda b: [b], "expected a JSON object"),
    "manifest of another format": (
        "manifest.json",
        lambda b: b | {"format": "x/9"},
        "unknown program format",
    ),
    "slm.json without sha256": ("slm.json", lambda b: {"path": b["path"]}, "'sha256'"),
    "settings guide is a string": (
        "settings.json",
        lambda b: b | {"guide": "fast"},
        "'guide' must be a JSON object",
    ),
    "settings policy without kind": ("settings.json", lambda b: b | {"policy": {}}, "missing key"),
    "routing band a word": (
        "settings.json",
        lambda b: b | {"guide": b["guide"] | {"routing": b["guide"]["routing"] | {"high": "high"}}},
        "'high' must be a number",
    ),
    "unknown guide setting": ("settings.json", lambda b: b | {"guide": b["guide"] | {"warp": 9}}, "warp"),
}


@pytest.mark.parametrize("case", sorted(PROGRAM_CASES))
def test_broken_program_directories_are_one_line(case, program_dir, tmp_path):
    name, mutate, words = PROGRAM_CASES[case]
    target = _broken(program_dir, tmp_path, name, mutate)
    text = tmp_path / "in.txt"
    text.write_text(TEXT, encoding="utf-8")
    result = runner.invoke(
        app, ["extract", "--program", str(target), str(text), "--out", str(tmp_path / "o.jsonl")]
    )
    assert_one_line_error(result, words)


def test_the_intact_program_directory_extracts(program_dir, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text(TEXT, encoding="utf-8")
    result = runner.invoke(
        app, ["extract", "--program", str(program_dir), str(text), "--out", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o.jsonl").read_text("utf-8").splitlines()[0])["text"] == TEXT


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("missing.jsonl", None, ("file not found", "missing.jsonl")),
        ("missing.txt", None, ("file not found", "missing.txt")),
        ("latin1.txt", "caf\xe9".encode("latin-1"), ("not UTF-8 text", "latin1.txt")),
        ("docs.csv", b"a,b\n", ("give a .txt file, a folder of them",)),
    ],
)
def test_bad_documents_are_one_line(name, content, words, program_dir, tmp_path):
    source = tmp_path / name
    if content is not None:
        source.write_bytes(content)
    args = ["extract", "--program", str(program_dir), str(source), "--out", str(tmp_path / "o.jsonl")]
    assert_one_line_error(runner.invoke(app, [*args, "--documents"]), *words)


def test_an_slm_with_nan_weights_is_refused(tiny_slm, tmp_path):
    from safetensors.torch import load_file, save_file

    target = tmp_path / "slm"
    shutil.copytree(tiny_slm[0], target)
    state = load_file(str(target / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name][..., 0] = float("nan")
    save_file(state, str(target / "model.safetensors"))
    (target / "checksums.json").unlink()  # an SLM saved before the checksum manifest: NaN still caught
    source = tmp_path / "in.jsonl"
    source.write_bytes(jsonl({"id": "s", "text": TEXT}))
    result = runner.invoke(
        app,
        ["slm", "predict", "--model", str(target), "--data", str(source), "--out", str(tmp_path / "p.jsonl")],
    )
    assert_one_line_error(result, "non-finite", name)


def test_an_slm_with_one_flipped_byte_is_refused_by_its_checksums(tiny_slm, tmp_path):
    """A flipped bit in a float loads without complaint and changes predictions: the checksum
    manifest written with the weights catches it."""
    target = tmp_path / "slm"
    shutil.copytree(tiny_slm[0], target)
    weights = target / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-100] ^= 0x01  # inside the last tensor's data: still a valid safetensors file
    weights.write_bytes(bytes(blob))
    source = tmp_path / "in.jsonl"
    source.write_bytes(jsonl({"id": "s", "text": TEXT}))
    result = runner.invoke(
        app,
        ["slm", "predict", "--model", str(target), "--data", str(source), "--out", str(tmp_path / "p.jsonl")],
    )
    assert_one_line_error(result, "model.safetensors: damaged", "checksums.json")


# ---- fuzz ------------------------------------------------------------------------------------------


def _schema():
    from slcolm_dspy.core.schema import load_schema

    return load_schema("chisre")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 50) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
ENTITY = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["PER", "LOC", "人物", "Nope", 3, None]),
        "start": st.integers(-2, 12) | JSON_VALUES,
        "end": st.integers(-2, 12) | JSON_VALUES,
        "text": st.text(max_size=4) | JSON_VALUES,
        "confidence": st.floats(allow_nan=True, allow_infinity=True) | JSON_VALUES,
    },
)
RELATION = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["父", "任职", "bogus", 1]),
        "head": st.integers(-1, 3) | JSON_VALUES,
        "tail": st.integers(-1, 3) | JSON_VALUES,
        "probability": st.floats(allow_nan=True, allow_infinity=True) | JSON_VALUES,
    },
)
RECORD = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=4) | st.integers(),
        "text": st.sampled_from([TEXT, "", "a"]) | JSON_VALUES,
        "entities": st.lists(ENTITY, max_size=3) | JSON_VALUES,
        "relations": st.lists(RELATION, max_size=3) | JSON_VALUES,
        "variants": st.dictionaries(st.sampled_from(["simplified"]), st.text(max_size=12)) | JSON_VALUES,
    },
)
SPERT = st.fixed_dictionaries(
    {},
    optional={
        "tokens": st.lists(st.text(max_size=3) | JSON_VALUES, max_size=6) | JSON_VALUES,
        "entities": st.lists(ENTITY, max_size=3) | JSON_VALUES,
        "relations": st.lists(RELATION, max_size=3) | JSON_VALUES,
    },
)
REPLAY_SLM = st.fixed_dictionaries(
    {"text": st.sampled_from(["董卓旻"]) | JSON_VALUES},
    optional={
        "entities": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "type": st.sampled_from(["人物", 4]),
                    "span": JSON_VALUES,
                    "confidence": JSON_VALUES,
                },
            ),
            max_size=3,
        )
        | JSON_VALUES,
        "relations": st.lists(
            st.fixed_dictionaries(
                {}, optional={"type": JSON_VALUES, "head": JSON_VALUES, "tail": JSON_VALUES}
            ),
            max_size=2,
        )
        | JSON_VALUES,
    },
)
# FUZZ_EXAMPLES=2000 for a deeper local search (CI: 150 per format)
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def assert_reads_or_refuses(path: Path, blob: bytes) -> None:
    """The contract: records come back, or one SlcolmError; never another exception."""
    path.write_bytes(blob)
    try:
        records, _ = read_records(path, _schema())
    except SlcolmError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    for record in records:  # what was accepted can be written back
        json.dumps(record.to_json(), ensure_ascii=False, allow_nan=False).encode("utf-8")


@FUZZ
@given(records=st.lists(RECORD, min_size=1, max_size=3))
def test_fuzz_jsonl(tmp_path_factory, records):
    blob = b"".join(
        json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n" for r in records
    )
    assert_reads_or_refuses(tmp_path_factory.mktemp("fz") / "f.jsonl", blob)


@FUZZ
@given(records=st.lists(SPERT, min_size=1, max_size=3))
def test_fuzz_spert(tmp_path_factory, records):
    assert_reads_or_refuses(tmp_path_factory.mktemp("fz") / "f.json", json.dumps(records).encode())


@FUZZ
@given(records=st.lists(REPLAY_SLM, min_size=1, max_size=3))
def test_fuzz_replay_slm(tmp_path_factory, records):
    assert_reads_or_refuses(tmp_path_factory.mktemp("fz") / "f.jsonl", jsonl(*records))


@FUZZ
@given(blob=st.binary(max_size=200))
def test_fuzz_raw_bytes(tmp_path_factory, blob):
    folder = tmp_path_factory.mktemp("fz")
    assert_reads_or_refuses(folder / "f.jsonl", blob)
    assert_reads_or_refuses(folder / "f.json", blob)


def test_skip_bad_covers_replay_style_files(tmp_path):
    good = {
        "text": "董卓",
        "entities": [{"type": "人物", "span": "董卓", "confidence": 0.9}],
        "relations": [],
    }
    bad = {"text": "旻", "entities": [{"type": "人物", "span": "旻", "confidence": "high"}], "relations": []}
    path = tmp_path / "slm.jsonl"
    path.write_bytes(jsonl(good, bad) + b"not json\n")
    records, report = read_records(path, _schema(), skip_bad=True)
    assert [r.text for r in records] == ["董卓"] and len(report.skipped) == 2
    with pytest.raises(SlcolmError, match="line 2"):
        read_records(path, _schema())
