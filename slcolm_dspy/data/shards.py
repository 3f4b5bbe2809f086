"""Where a document stream's records go: one JSON Lines file, or a folder of shards keyed by
document id (`shard-NN.jsonl`, NN from a stable hash of the id), so a library's output is split
into files of bounded size that can be read, copied and resumed independently."""

from __future__ import annotations

import zlib
from pathlib import Path

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.data.io import drop_torn_tail, written_ids
from slcolm_dspy.data.writers import JsonlAppender, dumps

DEFAULT_SHARDS = 16


def shard_of(document_id: str, shards: int) -> int:
    """The shard a document id goes to: the same on every machine and run (crc32, not `hash`,
    which Python salts per process)."""
    return zlib.crc32(document_id.encode("utf-8")) % shards


class RecordOutput:
    """Appends records to `out`: a `.jsonl` file, else a folder of `shards` files. Opening it
    drops a torn last line (a crash mid-write) so that record is redone; `done` holds the ids
    already written, so a rerun skips them."""

    def __init__(self, out: Path, shards: int = DEFAULT_SHARDS) -> None:
        self.out = out
        self.sharded = out.suffix != ".jsonl"
        self.paths = [out / f"shard-{i:02d}.jsonl" for i in range(shards)] if self.sharded else [out]
        self.done: set[str] = set()
        for path in self.paths:
            drop_torn_tail(path)
            self.done |= written_ids(path)
        self._open: dict[int, JsonlAppender] = {}

    def append(self, record: Sentence) -> None:
        self.append_line(record.id, dumps(record))

    def append_line(self, document_id: str, line: str) -> None:
        """A record serialised by `writers.dumps` elsewhere (a Ray worker), under its id."""
        index = shard_of(document_id, len(self.paths)) if self.sharded else 0
        if index not in self._open:
            self._open[index] = JsonlAppender(self.paths[index])
        self._open[index].append_line(line)

    def close(self) -> None:
        for sink in self._open.values():
            sink.close()
        self._open.clear()

    def __enter__(self) -> RecordOutput:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
