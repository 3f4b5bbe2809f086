"""Write an annotated corpus as brat standoff documents (`.txt` + `.ann`), so the brat path of
the toolkit can be run end to end on real data: `schema init` -> `make run` on the brat folders.

    python bench/brat_corpus.py --schema conll04 --data ../shared/data/conll04 --out runs/brat-conll04

Each split becomes a folder of documents of `--per-doc` sentences, one sentence per line, with
T (entity) and R (relation) lines at document offsets. Nothing of the corpus is committed: the
output goes under runs/ (git-ignored).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split


def write_document(sentences: list[Sentence], txt: Path, names: dict[str, str]) -> None:
    text_lines, ann_lines, offset, t = [], [], 0, 0
    for sentence in sentences:
        ids = []
        for entity in sentence.entities:
            t += 1
            ids.append(f"T{t}")
            start, end = offset + entity.start, offset + entity.end
            ann_lines.append(f"T{t}\t{names.get(entity.type, entity.type)} {start} {end}\t{entity.text}")
        for relation in sentence.relations:
            r = len([x for x in ann_lines if x.startswith("R")]) + 1
            ann_lines.append(f"R{r}\t{relation.type} Arg1:{ids[relation.head]} Arg2:{ids[relation.tail]}")
        text_lines.append(sentence.text)
        offset += len(sentence.text) + 1
    txt.write_text("\n".join(text_lines) + "\n", encoding="utf-8")
    txt.with_suffix(".ann").write_text("\n".join(ann_lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", default="conll04")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-doc", type=int, default=10)
    args = parser.parse_args()
    schema = load_schema(args.schema)
    assert schema.corpus is not None
    for split in schema.corpus.splits:
        records, _ = load_split(args.data, split, schema)
        folder = args.out / split
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(0, len(records), args.per_doc):
            write_document(records[n : n + args.per_doc], folder / f"doc{n // args.per_doc:04d}.txt", {})
        print(f"{split}: {len(records)} sentences -> {folder} ({-(-len(records) // args.per_doc)} documents)")


if __name__ == "__main__":
    main()
