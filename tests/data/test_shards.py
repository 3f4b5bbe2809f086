"""Where a document stream writes: a file or shards keyed by id, and resuming after a torn line."""

from __future__ import annotations

import json

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.data.io import drop_torn_tail
from slcolm_dspy.data.shards import RecordOutput, shard_of


def test_a_torn_last_line_longer_than_the_read_block_is_cut_back_to_the_last_record(tmp_path):
    path = tmp_path / "out.jsonl"
    whole = json.dumps({"id": "a", "text": "x"}) + "\n"
    torn = json.dumps({"id": "b", "text": "y" * 200_000})[:150_000]  # no newline, not JSON
    path.write_text(whole + torn, encoding="utf-8")
    assert drop_torn_tail(path) is True
    assert path.read_text(encoding="utf-8") == whole
    # a file that is one torn line: emptied; a whole record lacking only its newline: kept
    path.write_text(torn, encoding="utf-8")
    assert drop_torn_tail(path) is True and path.read_bytes() == b""
    path.write_text(whole.rstrip("\n"), encoding="utf-8")
    assert drop_torn_tail(path) is False and path.read_text(encoding="utf-8") == whole


def test_shards_are_chosen_by_id_and_a_reopened_output_knows_what_it_holds(tmp_path):
    records = [Sentence(f"doc{i}", f"text {i}") for i in range(40)]
    with RecordOutput(tmp_path / "out", shards=4) as sink:
        for record in records:
            sink.append(record)
    files = sorted((tmp_path / "out").glob("shard-*.jsonl"))
    assert [f.name for f in files] == [f"shard-{i:02d}.jsonl" for i in range(4)]
    for index, path in enumerate(files):
        ids = [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]
        assert ids and all(shard_of(i, 4) == index for i in ids)
    # a crash mid-write in one shard: that record is dropped and counted as not done
    victim = files[1]
    lines = victim.read_text(encoding="utf-8").splitlines()
    victim.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:10], encoding="utf-8")
    reopened = RecordOutput(tmp_path / "out", shards=4)
    lost = json.loads(lines[-1])["id"]
    assert reopened.done == {r.id for r in records} - {lost}
    # a .jsonl name is one file
    single = RecordOutput(tmp_path / "one.jsonl")
    single.append(records[0])
    single.close()
    assert RecordOutput(tmp_path / "one.jsonl").done == {"doc0"}
