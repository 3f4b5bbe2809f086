"""The report page as a real headless browser draws it (bench/report_in_browser.py). Runs where a
Chromium is installed (`apt-get install chromium fonts-noto-cjk`); skips, saying so, elsewhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from slcolm_dspy.evaluate.report import System, build_report, write_html

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "report_in_browser", REPO / "bench" / "report_in_browser.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def browser():
    found = _bench().find_browser()
    if found is None:
        pytest.skip("no headless browser installed (apt-get install chromium fonts-noto-cjk)")
    return found


def test_chisre_chart_draws_every_type_name_in_cjk(browser, replay_pack, schema, tmp_path):
    bench = _bench()
    systems = [System("slm (recorded)", replay_pack.test_slm)]
    report = build_report(replay_pack.test_gold, systems, schema, protocols=("paper",))
    page = tmp_path / "report.html"
    write_html(
        report, replay_pack.test_gold, replay_pack.test_slm, schema, page, title="t", chart=None, system="s"
    )
    names = list(report["systems"][0]["per_type"])
    summary, problems = bench.check_page(browser, page, names, tmp_path / "shot.png")
    assert problems == []
    assert summary["labels"] == len(names) == 40
    # Distinct characters drew distinct glyphs: a font for them exists (boxes would all match).
    assert summary["distinct_glyphs"] == summary["characters"] > 40
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_the_check_fails_on_a_clipped_label_and_a_missing_type(browser, replay_pack, schema, tmp_path):
    bench = _bench()
    report = build_report(
        replay_pack.test_gold, [System("s", replay_pack.test_slm)], schema, protocols=("paper",)
    )
    page = tmp_path / "report.html"
    write_html(
        report, replay_pack.test_gold, replay_pack.test_slm, schema, page, title="t", chart=None, system="s"
    )
    text = page.read_text(encoding="utf-8")
    first = next(iter(report["systems"][0]["per_type"]))
    # Push one label far outside the drawing, as a layout bug would.
    clipped = text.replace("<text class='type' x='", "<text class='type' x='99999' data-x='", 1)
    page.write_text(clipped, encoding="utf-8")
    _, problems = bench.check_page(browser, page, [first, "no-such-type"], tmp_path / "shot.png")
    assert any("falls outside the chart" in p for p in problems)
    assert any("'no-such-type' has no label" in p for p in problems)
