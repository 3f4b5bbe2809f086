"""How far maintained converters are from the simplified form the paper used.

For every train sentence, convert the traditional text character by character (and whole, for
OpenCC, which also has phrase rules) and count sentences that differ from the corpus's own
simplified form (the SpERT files' `tokens`). Needs `zhconv` and/or `opencc` installed.

    python bench/conversion_mismatch.py ../shared/data/chisre
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split


def converters() -> dict[str, object]:
    found = {}
    try:
        import zhconv

        found["zhconv (zh-hans)"] = lambda s: zhconv.convert(s, "zh-hans")
    except ImportError:
        pass
    try:
        import opencc

        found["OpenCC (t2s)"] = opencc.OpenCC("t2s").convert
    except ImportError:
        pass
    return found


def main(data_dir: Path) -> None:
    schema = load_schema("chisre")
    records, _ = load_split(data_dir, "train", schema)
    results = {}
    for name, convert in converters().items():
        charwise = sum(1 for r in records if "".join(convert(c) for c in r.text) != r.variants["simplified"])
        whole = sum(1 for r in records if convert(r.text) != r.variants["simplified"])
        results[name] = {"char_by_char": charwise, "whole_sentence": whole, "sentences": len(records)}
    print(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/chisre"))
