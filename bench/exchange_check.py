"""The round trip the active-learning bench reports: records exported for correction (brat and
Label Studio) and read back unchanged must be the records exported."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from slcolm_dspy.annotate.exchange import export_brat, export_label_studio, import_brat, import_label_studio
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema


def round_trip_changed(records: Sequence[Sentence], schema: Schema, folder: Path) -> dict[str, int]:
    """Records that differ after export -> unchanged files -> import, per format."""
    exported = list(records)
    export_brat(exported, folder / "brat", schema)
    export_label_studio(exported, folder / "label_studio.json", schema)
    back = {
        "brat": import_brat(folder / "brat", schema)[0],
        "label_studio": import_label_studio(folder / "label_studio.json", schema)[0],
    }
    return {
        name: sum(a != b for a, b in zip(exported, got, strict=True)) + abs(len(got) - len(exported))
        for name, got in back.items()
    }
