"""Records out to an annotation tool, pre-annotated, and the corrected annotations back in.

- **brat** (`export_brat` / `import_brat`): one document, `selection.txt`, one record per line;
  `selection.ann` holds the records' entities and relations (an SLM's confidences as annotator
  notes); `annotation.conf` and `visual.conf` from the schema, so brat opens the folder as it is.
  `slcolm-export.json` beside them keeps what brat cannot: each line's record id and variants,
  and the order the record listed its entities and relations in.
- **Label Studio** (`export_label_studio` / `import_label_studio`): a JSON task list with the
  records as predictions (`label_config.xml` beside it is the labelling interface); the import
  reads Label Studio's JSON export, taking each task's last annotation that was not cancelled
  (its prediction where nobody annotated it).

Reading back goes through the same readers and checks as any input (a bad offset is named with
file and line). A record comes back exactly as it went out when nobody changed it: the entities
and relations it had stay in its order, new ones follow in text order; scores are dropped (what
comes back is gold).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slcolm_dspy.core.errors import DataError, SlcolmError
from slcolm_dspy.core.records import Relation, Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.data.brat import BratOptions, read_brat
from slcolm_dspy.data.build import ReadReport, SentenceBuilder
from slcolm_dspy.data.io import load_json

DOCUMENT = "selection"
SIDECAR = "slcolm-export.json"
FORMAT = "slcolm-export/1"
ONE_LINE_PER_RECORD = BratOptions(line_breaks="sentence", unit="paragraph")


def _line_safe(record: Sentence) -> None:
    if "\n" in record.text or "\r" in record.text or record.text != record.text.strip():
        raise SlcolmError(
            f"record {record.id!r}: a text with line breaks or surrounding space cannot be one brat line"
        )


# --- brat ------------------------------------------------------------------------------------


def export_brat(records: Sequence[Sentence], folder: Path, schema: Schema) -> Path:
    """Write `records` as a brat folder (see the module docstring); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    lines, ann, sidecar = [], [], []
    offset, t = 0, 0
    for record in records:
        _line_safe(record)
        if any(not e.grounded for e in record.entities):
            raise SlcolmError(f"record {record.id!r}: an entity without offsets cannot be annotated in brat")
        names = []
        for e in record.entities:
            t += 1
            names.append(f"T{t}")
            ann.append(f"T{t}\t{e.type} {offset + e.start} {offset + e.end}\t{e.text}")
            if e.confidence is not None:
                ann.append(f"#{t}\tAnnotatorNotes T{t}\tSLM confidence {e.confidence:.2f}")
        for r in record.relations:
            ann.append(f"R{len(ann) + 1}\t{r.type} Arg1:{names[r.head]} Arg2:{names[r.tail]}")
        sidecar.append({"id": record.id, "start": offset, "variants": record.variants, **_order(record)})
        lines.append(record.text)
        offset += len(record.text) + 1
    (folder / f"{DOCUMENT}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (folder / f"{DOCUMENT}.ann").write_text("".join(line + "\n" for line in ann), encoding="utf-8")
    (folder / "annotation.conf").write_text(annotation_conf(schema), encoding="utf-8")
    (folder / "visual.conf").write_text(visual_conf(schema), encoding="utf-8")
    blob = {"format": FORMAT, "schema": schema.name, "records": sidecar}
    (folder / SIDECAR).write_text(json.dumps(blob, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


def _order(record: Sentence) -> dict[str, Any]:
    """The record's entities (type and offsets) and relations (type and entity indices) as it
    listed them, repeats included: brat keeps one of each, the import restores them."""
    return {
        "entities": [[e.type, e.start, e.end] for e in record.entities],
        "relations": [[r.type, r.head, r.tail] for r in record.relations],
    }


def annotation_conf(schema: Schema) -> str:
    """brat's type configuration: the schema's entity codes and relation types (any entity
    type may fill either argument; the schema does not restrict them)."""
    lines = ["[entities]", *schema.entity_names, "", "[relations]"]
    lines += [f"{t}\tArg1:<ENTITY>, Arg2:<ENTITY>" for t in schema.relation_types]
    lines += [
        "<OVERLAP>\tArg1:<ENTITY>, Arg2:<ENTITY>, <OVL-TYPE>:<ANY>",
        "",
        "[events]",
        "",
        "[attributes]",
        "",
    ]
    return "\n".join(lines)


def visual_conf(schema: Schema) -> str:
    """Display names for brat's labels: `code | display name | code`."""
    lines = ["[labels]", *(f"{code} | {name} | {code}" for code, name in schema.entity_names.items())]
    lines += ["", "[drawing]", "SPAN_DEFAULT\tfgColor:black, bgColor:lightgreen, borderColor:darken"]
    lines += ["ARC_DEFAULT\tcolor:black, arrowHead:triangle-5", ""]
    return "\n".join(lines)


def import_brat(folder: Path, schema: Schema) -> tuple[list[Sentence], ReadReport]:
    """The records of an exported (and corrected) brat folder, ids and variants restored."""
    sidecar = _sidecar(folder)
    records, report = read_brat(folder / f"{DOCUMENT}.ann", schema, options=ONE_LINE_PER_RECORD)
    by_start = {int(r.id.rsplit(":", 1)[1]): r for r in records}
    out = []
    for line, meta in enumerate(sidecar, start=1):
        got = by_start.get(meta["start"])
        if got is None:
            raise DataError(
                str(folder / f"{DOCUMENT}.txt"), "a line's text was changed or removed", f"line {line}"
            )
        out.append(_restored(got, meta))
    if len(records) != len(sidecar):
        raise DataError(
            str(folder / f"{DOCUMENT}.txt"), f"{len(records)} lines, but {len(sidecar)} were exported"
        )
    return out, report


def _sidecar(folder: Path) -> list[dict[str, Any]]:
    path = folder / SIDECAR
    if not path.is_file():
        raise SlcolmError(
            f"{folder}: not an exported folder ({SIDECAR} missing); export with `slcolm annotate export`"
        )
    blob = load_json(path)
    if (
        not isinstance(blob, dict)
        or blob.get("format") != FORMAT
        or not isinstance(blob.get("records"), list)
    ):
        raise DataError(str(path), f"expected an object of format {FORMAT} with 'records'")
    return blob["records"]


def _restored(got: Sentence, meta: dict[str, Any]) -> Sentence:
    """`got` (read from brat) with the exported record's id and variants; the exported entities
    and relations that are still there come first, in the exported order and with their repeats,
    then the new ones in text order."""
    spans = [(e.type, e.start, e.end) for e in got.entities]
    exported = [tuple(x) for x in meta.get("entities", [])]
    kept = [i for i, span in enumerate(exported) if span in spans]
    order = [exported[i] for i in kept] + [span for span in spans if span not in exported]
    entities = tuple(got.entities[spans.index(span)] for span in order)
    new_index = {old: kept.index(old) for old in kept}
    present = {(r.type, spans[r.head], spans[r.tail]) for r in got.relations}
    relations: list[Relation] = []
    matched = set()
    for rel_type, head, tail in meta.get("relations", []):
        key = (rel_type, exported[head], exported[tail])
        if head in new_index and tail in new_index and key in present:
            relations.append(Relation(rel_type, new_index[head], new_index[tail]))
            matched.add(key)
    for r in got.relations:
        key = (r.type, spans[r.head], spans[r.tail])
        if key not in matched:
            relations.append(Relation(r.type, order.index(spans[r.head]), order.index(spans[r.tail])))
    return Sentence(str(meta["id"]), got.text, entities, tuple(relations), dict(meta.get("variants") or {}))


# --- Label Studio ----------------------------------------------------------------------------


def export_label_studio(records: Sequence[Sentence], path: Path, schema: Schema) -> Path:
    """A Label Studio task list with the records as predictions, and the labelling interface
    (`label_config.xml`) beside it."""
    tasks = []
    for n, record in enumerate(records, start=1):
        if any(not e.grounded for e in record.entities):
            raise SlcolmError(f"record {record.id!r}: an entity without offsets cannot be annotated")
        result: list[dict[str, Any]] = []
        for i, e in enumerate(record.entities):
            value = {"start": e.start, "end": e.end, "text": e.text, "labels": [e.type]}
            item = {"id": f"e{i}", "from_name": "entity", "to_name": "text", "type": "labels", "value": value}
            if e.confidence is not None:
                item["score"] = e.confidence
            result.append(item)
        for r in record.relations:
            result.append(
                {"type": "relation", "from_id": f"e{r.head}", "to_id": f"e{r.tail}", "direction": "right",
                 "labels": [r.type]}
            )  # fmt: skip
        data = {"text": record.text, "slcolm_id": record.id, "variants": record.variants}
        tasks.append({"id": n, "data": data, "predictions": [{"model_version": "slcolm", "result": result}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    (path.parent / "label_config.xml").write_text(label_config(schema), encoding="utf-8")
    return path


def label_config(schema: Schema) -> str:
    from xml.sax.saxutils import quoteattr

    entity = "".join(
        f"\n    <Label value={quoteattr(c)} hint={quoteattr(n)}/>" for c, n in schema.entity_names.items()
    )
    relation = "".join(f"\n    <Relation value={quoteattr(t)}/>" for t in schema.relation_types)
    return (
        "<View>\n  <Relations>"
        f'{relation}\n  </Relations>\n  <Labels name="entity" toName="text">{entity}\n  </Labels>\n'
        '  <Text name="text" value="$text"/>\n</View>\n'
    )


def import_label_studio(path: Path, schema: Schema) -> tuple[list[Sentence], ReadReport]:
    """Records from Label Studio's JSON export (or the exported task list itself)."""
    tasks = load_json(path)
    if not isinstance(tasks, list):
        raise DataError(str(path), "expected Label Studio's JSON export: a list of tasks")
    builder = SentenceBuilder(schema, str(path))
    out = [_task(builder, task, n) for n, task in enumerate(tasks, start=1)]
    return out, builder.report


def _task(builder: SentenceBuilder, task: Any, n: int) -> Sentence:
    where = f"task {n}"
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise builder.fail(where, "a task needs a 'data' object")
    data = task["data"]
    done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    chosen = done[-1] if done else next(iter(task.get("predictions") or []), {"result": []})
    result = chosen.get("result") if isinstance(chosen, dict) else None
    if not isinstance(result, list):
        raise builder.fail(where, "an annotation's 'result' must be a list")
    labels = [r for r in result if isinstance(r, dict) and r.get("type") == "labels"]
    index = {str(r.get("id")): i for i, r in enumerate(labels)}
    entities = []
    for r in labels:
        value = r.get("value") if isinstance(r.get("value"), dict) else {}
        kinds = value.get("labels") or [None]
        entities.append(
            {
                "type": kinds[0],
                "start": value.get("start"),
                "end": value.get("end"),
                "text": value.get("text"),
            }
        )
    relations = []
    for r in result:
        if isinstance(r, dict) and r.get("type") == "relation":
            if r.get("from_id") not in index or r.get("to_id") not in index:
                raise builder.fail(
                    where, f"relation {r.get('from_id')} -> {r.get('to_id')} names no labelled span"
                )
            relations.append(
                {
                    "type": (r.get("labels") or [None])[0],
                    "head": index[r["from_id"]],
                    "tail": index[r["to_id"]],
                }
            )
    return builder.sentence(
        sid=str(data.get("slcolm_id", f"{Path(builder.source).stem}-{n:04d}")),
        text=data.get("text"),
        entities=entities,
        relations=relations,
        record=where,
        variants=data.get("variants") or {},
    )
