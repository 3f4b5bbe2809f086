"""The evaluation report of a compiled program: every system scored by `RelationEvaluator`
under both protocols, written as `report.json`, a per-type F1 chart (PNG) and an HTML page of
sentences with gold and predicted triples."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.evaluate.evaluator import PROTOCOLS, RelationEvaluator

SUMMARY_KEYS = (
    "micro_p",
    "micro_r",
    "micro_f1",
    "macro_p",
    "macro_r",
    "macro_f1",
    "head_macro_f1",
    "tail_macro_f1",
    "head_types",
    "tail_types",
)


@dataclass
class System:
    name: str
    records: Sequence[Sentence]
    llm_calls: int = 0
    prompt_tokens: int = 0
    seconds: float | None = None
    note: str = ""


def build_report(
    gold: Sequence[Sentence],
    systems: Sequence[System],
    schema: Schema,
    *,
    protocols: Sequence[str] = PROTOCOLS,
    **extra: Any,
) -> dict[str, Any]:
    """Score every system under `protocols` ("paper" first: per-type figures are the paper's;
    records without offsets, such as the recorded outputs, can only be scored by it)."""
    evaluators = {p: RelationEvaluator(gold, schema, p) for p in protocols}
    rows = []
    for system in systems:
        scores = {p: evaluators[p](system.records) for p in protocols}
        rows.append(
            {
                "name": system.name,
                "note": system.note,
                **{p: {k: scores[p][k] for k in SUMMARY_KEYS} for p in protocols},
                "ner_f1": scores["paper"].get("ner_f1"),
                "per_type": scores["paper"]["per_type"],
                "llm_calls": system.llm_calls,
                "prompt_tokens": system.prompt_tokens,
                "seconds": system.seconds,
            }
        )
    return {
        "sentences": len(gold),
        "protocols": list(protocols),
        "primary_metric": "paper.macro_f1",
        "systems": rows,
        **extra,
    }


def write_json(report: Mapping[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _type_order(schema: Schema, report: Mapping[str, Any]) -> list[str]:
    present = set()
    for row in report["systems"]:
        present |= set(row["per_type"])
    head = [t for t in schema.relation_types if t in present and t in schema.head_types]
    tail = [t for t in schema.relation_types if t in present and t not in schema.head_types]
    return head + tail


_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3")


def svg_chart(report: Mapping[str, Any], schema: Schema, names: Sequence[str]) -> str:
    """The per-type F1 bars as inline SVG: the browser draws the type names in whatever script
    they are written, with its own fonts (no font needed where the report is made)."""
    esc = html.escape
    types = _type_order(schema, report)
    rows = {r["name"]: r for r in report["systems"]}
    shown = [n for n in names if n in rows]
    group_w, bar_h, left, top = 28, 200, 40, 30
    label_h = 12 + 14 * max((len(t) for t in types), default=1) // 2 + 40
    width = left + group_w * len(types) + 20
    height = top + bar_h + label_h + 20 * len(shown)
    bar_w = (group_w - 6) / max(1, len(shown))
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'"
        " aria-label='per-type F1' font-family='sans-serif' font-size='11'>",
        f"<line x1='{left}' y1='{top + bar_h}' x2='{width - 10}' y2='{top + bar_h}' stroke='#888'/>",
    ]
    for y in (0, 50, 100):
        yy = top + bar_h - bar_h * y / 100
        out.append(f"<text x='{left - 4}' y='{yy + 4}' text-anchor='end'>{y}</text>")
    n_head = sum(1 for t in types if t in schema.head_types)
    if 0 < n_head < len(types):
        x = left + group_w * n_head
        out.append(
            f"<line x1='{x}' y1='{top - 10}' x2='{x}' y2='{top + bar_h}' stroke='#999' stroke-dasharray='4'/>"
        )
        out.append(
            f"<text x='{left + group_w * n_head / 2}' y='{top - 14}' text-anchor='middle'>head types</text>"
        )
        out.append(
            f"<text x='{x + group_w * (len(types) - n_head) / 2}' y='{top - 14}'"
            " text-anchor='middle'>tail types</text>"
        )
    for i, t in enumerate(types):
        x0 = left + group_w * i + 3
        for j, name in enumerate(shown):
            f1 = 100 * rows[name]["per_type"].get(t, {}).get("f1", 0.0)
            h = bar_h * f1 / 100
            colour = _COLOURS[j % len(_COLOURS)]
            out.append(
                f"<rect x='{x0 + j * bar_w:.1f}' y='{top + bar_h - h:.1f}' width='{bar_w:.1f}'"
                f" height='{h:.1f}' fill='{colour}'><title>{esc(t)} · {esc(name)}: {f1:.1f}</title></rect>"
            )
        cx, cy = x0 + (group_w - 6) / 2, top + bar_h + 8
        out.append(f"<text class='type' x='{cx}' y='{cy}' transform='rotate(60 {cx} {cy})'>{esc(t)}</text>")
    for j, name in enumerate(shown):
        y = top + bar_h + label_h + 20 * j
        out.append(
            f"<rect x='{left}' y='{y - 10}' width='12' height='12' fill='{_COLOURS[j % len(_COLOURS)]}'/>"
        )
        out.append(f"<text x='{left + 18}' y='{y}'>{esc(name)}</text>")
    out.append("</svg>")
    return "".join(out)


def svg_tail_chart(report: Mapping[str, Any], names: Sequence[str], train_counts: Mapping[str, int]) -> str:
    """Per-type F1 against the type's train count (log scale), one colour per system: where the
    long tail is lost. Types without train relations sit at the left edge."""
    esc = html.escape
    rows = {r["name"]: r for r in report["systems"]}
    shown = [n for n in names if n in rows]
    types = sorted({t for n in shown for t in rows[n]["per_type"]}, key=lambda t: train_counts.get(t, 0))
    left, top, w, h = 46, 16, 520, 220
    top_count = max([train_counts.get(t, 0) for t in types] + [10])
    span = math.log10(top_count + 1)

    def x_of(count: int) -> float:
        return left + w * math.log10(count + 1) / span

    height = top + h + 50 + 18 * len(shown)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + w + 20}' height='{height}'"
        " role='img' aria-label='per-type F1 against train count' font-family='sans-serif' font-size='11'>",
        f"<rect x='{left}' y='{top}' width='{w}' height='{h}' fill='none' stroke='#888'/>",
    ]
    for y in (0, 25, 50, 75, 100):
        yy = top + h - h * y / 100
        out.append(f"<text x='{left - 4}' y='{yy + 4}' text-anchor='end'>{y}</text>")
    tick = 1
    while tick <= top_count:
        out.append(f"<text x='{x_of(tick):.1f}' y='{top + h + 14}' text-anchor='middle'>{tick}</text>")
        tick *= 10
    out.append(
        f"<text x='{left + w / 2}' y='{top + h + 30}' text-anchor='middle'>train relations of the type"
        " (log scale); F1 (paper protocol, %)</text>"
    )
    for j, name in enumerate(shown):
        colour = _COLOURS[j % len(_COLOURS)]
        for t in types:
            if t not in rows[name]["per_type"]:
                continue
            f1 = 100 * rows[name]["per_type"][t].get("f1", 0.0)
            cx, cy = x_of(train_counts.get(t, 0)) + 3 * j, top + h - h * f1 / 100
            out.append(
                f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='4' fill='{colour}' fill-opacity='0.75'>"
                f"<title>{esc(t)} · {train_counts.get(t, 0)} train · {esc(name)}: {f1:.1f}</title></circle>"
            )
        y = top + h + 48 + 18 * j
        out.append(f"<rect x='{left}' y='{y - 10}' width='12' height='12' fill='{colour}'/>")
        out.append(f"<text x='{left + 18}' y='{y}'>{esc(name)}</text>")
    out.append("</svg>")
    return "".join(out)


def _cjk_font() -> str | None:
    """An installed font that draws CJK characters, if any."""
    from matplotlib import font_manager

    hints = ("CJK", "WenQuanYi", "SimHei", "Heiti", "Ming", "Song", "Noto Sans SC", "Source Han")
    return next((f.name for f in font_manager.fontManager.ttflist if any(h in f.name for h in hints)), None)


def write_chart(report: Mapping[str, Any], schema: Schema, names: Sequence[str], path: Path) -> None:
    """Grouped bars of per-type F1 (paper protocol) for the named systems, head types then tail.

    Types are labelled by name where the names are ASCII or a CJK font is installed; otherwise
    by number, and the axis says the report page's table names them (boxes would say nothing).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = _type_order(schema, report)
    rows = {r["name"]: r for r in report["systems"]}
    shown = [n for n in names if n in rows]
    n_head = sum(1 for t in types if t in schema.head_types)
    fig, ax = plt.subplots(figsize=(max(8, 0.32 * len(types) + 2), 4.8), dpi=110)
    width = 0.8 / max(1, len(shown))
    for i, name in enumerate(shown):
        values = [100 * rows[name]["per_type"].get(t, {}).get("f1", 0.0) for t in types]
        ax.bar([x + i * width for x in range(len(types))], values, width, label=name)
    ax.axvline(n_head - 0.5 + 0.4, color="grey", linestyle="--", linewidth=1)
    ax.text(n_head / 2, 103, "head types", ha="center", fontsize=9)
    ax.text(n_head + (len(types) - n_head) / 2, 103, "tail types", ha="center", fontsize=9)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(types))])
    font = None if all(t.isascii() for t in types) else _cjk_font()
    if font or all(t.isascii() for t in types):
        ax.set_xticklabels(types, fontsize=7, rotation=60, ha="right", fontfamily=font or "sans-serif")
        ax.set_xlabel("relation type")
    else:
        ax.set_xticklabels([str(schema.relation_types.index(t) + 1) for t in types], fontsize=7)
        ax.set_xlabel("relation type (number: see the table on the report page; no CJK font installed)")
    ax.set_ylim(0, 112)
    ax.set_ylabel("F1 (paper protocol, %)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(shown), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def group_macro(scores: Mapping[str, Any], group: str) -> str:
    """A group's macro F1 as a percentage; "–" where the group has no type to average (a schema
    with no tail types), which 0.00 would misreport as a failure."""
    if scores.get(f"{group}_types") == 0:
        return "–"
    return f"{100 * scores[f'{group}_macro_f1']:.2f}"


def _triples(record: Sentence | None, form: str | None) -> list[tuple[str, str, str]]:
    return record.triples(form) if record is not None else []


def write_html(
    report: Mapping[str, Any],
    gold: Sequence[Sentence],
    predicted: Sequence[Sentence],
    schema: Schema,
    path: Path,
    *,
    title: str,
    chart: str | None,
    system: str,
) -> None:
    """A page: the summary table, per-type F1, the chart, then every sentence with its gold and
    predicted triples; correct ones plain, wrong ones and missed ones marked."""
    form = schema.paper.form
    esc = html.escape
    protocols = report.get("protocols", PROTOCOLS)
    by_id = {p.id: p for p in predicted}
    out = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:first-child{text-align:left}"
        ".ok{color:#1a7f37}.wrong{color:#c62828;text-decoration:line-through}.missed{color:#b26a00}"
        ".s{margin:1em 0;padding:.5em;border-left:3px solid #ddd}.t{font-size:1.1em}</style>",
        f"<h1>{esc(title)}</h1>",
        f"<h2>Systems ({' / '.join(protocols)} protocol, %)</h2><table><tr><th>system</th>"
        + "".join(f"<th>{p} micro</th><th>{p} macro</th>" for p in protocols)
        + "<th>head macro</th><th>tail macro</th><th>LLM calls</th></tr>",
    ]
    for row in report["systems"]:
        cells = "".join(
            f"<td>{100 * row[p]['micro_f1']:.2f}</td><td>{100 * row[p]['macro_f1']:.2f}</td>"
            for p in protocols
        )
        paper = row["paper"]
        out.append(
            f"<tr><td>{esc(row['name'])}</td>{cells}"
            f"<td>{group_macro(paper, 'head')}</td><td>{group_macro(paper, 'tail')}</td>"
            f"<td>{row['llm_calls']}</td></tr>"
        )
    out.append("</table>")
    out.append("<h2>Per-type F1</h2>" + svg_chart(report, schema, [r["name"] for r in report["systems"]]))
    if chart:
        out.append(f"<p>The same chart as an image: <a href='{esc(chart)}'>{esc(chart)}</a></p>")
    if report.get("train_counts"):
        out.append("<h2>The long tail: per-type F1 against train count</h2>")
        out.append(svg_tail_chart(report, [r["name"] for r in report["systems"]], report["train_counts"]))
    rows = {r["name"]: r for r in report["systems"]}
    out.append("<table><tr><th>#</th><th>type</th><th>group</th><th>gold</th>")
    names = [r["name"] for r in report["systems"]]
    out += [f"<th>{esc(n)}</th>" for n in names] + ["</tr>"]
    for t in _type_order(schema, report):
        cells = "".join(f"<td>{100 * rows[n]['per_type'].get(t, {}).get('f1', 0.0):.1f}</td>" for n in names)
        gold_n = next((rows[n]["per_type"][t]["gold"] for n in names if t in rows[n]["per_type"]), 0)
        group = "head" if t in schema.head_types else "tail"
        out.append(
            f"<tr><td>{schema.relation_types.index(t) + 1}</td><td>{esc(t)}</td><td>{group}</td>"
            f"<td>{gold_n}</td>{cells}</tr>"
        )
    out.append(f"</table><h2>Sentences: gold vs {esc(system)}</h2>")
    out.append(
        "<p><span class='ok'>correct</span> · <span class='wrong'>wrong (predicted, not gold)</span> · "
        "<span class='missed'>missed (gold, not predicted)</span>; "
        "triples as (head, relation, tail) strings.</p>"
    )
    for g in gold:
        p = by_id.get(g.id)
        gold_set, pred_set = set(_triples(g, form)), set(_triples(p, form))
        items = [("ok", t) for t in sorted(gold_set & pred_set)]
        items += [("wrong", t) for t in sorted(pred_set - gold_set)]
        items += [("missed", t) for t in sorted(gold_set - pred_set)]
        marks = " ".join(
            f"<span class='{k}'>({esc(h)}, {esc(r)}, {esc(tl)})</span>" for k, (r, h, tl) in items
        )
        sentence = f"<div class='t'>{esc(g.id)}: {esc(g.form(form))}</div>"
        out.append(f"<div class='s'>{sentence}<div>{marks or '—'}</div></div>")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
