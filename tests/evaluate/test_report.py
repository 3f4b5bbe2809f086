"""The report page's long-tail chart: one point per type and system, placed by train count (log
scale) and F1, on the page whenever the report carries train counts."""

import xml.etree.ElementTree as ET

from slcolm_dspy.evaluate.report import svg_tail_chart, write_html

NS = "{http://www.w3.org/2000/svg}"


def _report(schema, f1_of):
    per_type = {t: {"f1": f1_of(i), "gold": 3} for i, t in enumerate(schema.relation_types)}
    return {"systems": [{"name": "old", "per_type": per_type}, {"name": "new", "per_type": per_type}]}


def test_each_type_is_a_point_by_train_count_and_f1(schema):
    counts = {t: 1000 // (i + 1) for i, t in enumerate(schema.relation_types)}
    report = _report(schema, lambda i: i / 40)
    root = ET.fromstring(svg_tail_chart(report, ["old", "new"], counts))
    points = list(root.iter(f"{NS}circle"))
    assert len(points) == 2 * len(schema.relation_types)
    by_title = {p.find(f"{NS}title").text: p for p in points}
    frequent = by_title[f"{schema.relation_types[0]} · 1000 train · old: 0.0"]
    rare = by_title[f"{schema.relation_types[-1]} · 25 train · old: 97.5"]
    # more train relations: further right; higher F1: higher up (smaller y)
    assert float(frequent.get("cx")) > float(rare.get("cx"))
    assert float(frequent.get("cy")) > float(rare.get("cy"))


def test_the_page_shows_the_tail_chart_only_with_train_counts(schema, tmp_path):
    report = {**_report(schema, lambda i: 0.5), "protocols": ["paper"]}
    for row in report["systems"]:
        row["paper"] = {"micro_f1": 0.5, "macro_f1": 0.5, "head_macro_f1": 0.5, "tail_macro_f1": 0.5}
        row["llm_calls"] = 0
    page = tmp_path / "report.html"
    write_html(report, [], [], schema, page, title="t", chart=None, system="new")
    assert "against train count" not in page.read_text(encoding="utf-8")
    report["train_counts"] = {t: 5 for t in schema.relation_types}
    write_html(report, [], [], schema, page, title="t", chart=None, system="new")
    assert page.read_text(encoding="utf-8").count("<circle") == 2 * len(schema.relation_types)
