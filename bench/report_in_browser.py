"""Open evaluation report pages in a real headless browser and check what a person would see.

For each page: every relation type of the chart is drawn as an SVG text element with a width,
inside the chart (not clipped), and its characters come out as distinct glyphs (two different
characters drawn as the same image means a missing font's boxes). A screenshot of each page is
kept next to the results so a reader can look for themselves.

    python bench/report_in_browser.py                       # ChisRE (CJK) page from the replay pack
    python bench/report_in_browser.py --page DIR/report.html --schema conll04

The ChisRE page is built from the paper's recorded SLM predictions on test (the replay pack), so
the check needs no training; it shows the chart a user gets from `slcolm evaluate --report`.
Exits 1 with one line per problem; 2 when no browser is installed.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.replay_pack import ReplayPack
from slcolm_dspy.evaluate.report import System, build_report, write_html

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Runs inside the page after layout: measures every type label on screen and draws each of its
# characters on a canvas, so the result says whether real glyphs were painted.
_PROBE = """
<script>
window.addEventListener('load', () => {
  const svg = document.querySelector('svg');
  const box = svg.getBoundingClientRect();
  const labels = [...svg.querySelectorAll('text.type')].map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent, width: r.width, height: r.height,
            inside: r.left >= box.left - 1 && r.right <= box.right + 1
                    && r.top >= box.top - 1 && r.bottom <= box.bottom + 1};
  });
  const font = getComputedStyle(svg.querySelector('text.type') || svg).fontFamily;
  const canvas = document.createElement('canvas');
  canvas.width = 32; canvas.height = 32;
  const ctx = canvas.getContext('2d');
  const images = {};
  for (const ch of new Set(labels.map(l => l.text).join(''))) {
    ctx.clearRect(0, 0, 32, 32);
    ctx.font = '24px ' + font;
    ctx.fillText(ch, 2, 26);
    images[ch] = canvas.toDataURL();
  }
  const pre = document.createElement('pre');
  pre.id = 'slcolm-probe';
  pre.textContent = JSON.stringify({svg: {width: box.width, height: box.height}, labels, images});
  document.body.appendChild(pre);
});
</script>
"""


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def chisre_page(data: Path, out: Path) -> Path:
    """A report page over the recorded SLM predictions on ChisRE test (CJK type names)."""
    schema = load_schema("chisre")
    pack = ReplayPack.load(data / "replay", schema)
    # The recorded outputs carry no character offsets, so only the paper protocol scores them.
    systems = [System("slm (recorded)", pack.test_slm)]
    report = build_report(pack.test_gold, systems, schema, protocols=("paper",))
    page = out / "chisre_report.html"
    write_html(
        report, pack.test_gold, pack.test_slm, schema, page, title="ChisRE test", chart=None, system="slm"
    )
    return page


def _browser(browser: str, *args: str) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{browser} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return done.stdout


def check_page(browser: str, page: Path, type_names: list[str], shot: Path) -> tuple[dict, list[str]]:
    """Render `page`, return the probe's measurements and the problems found."""
    text = page.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        probed = Path(tmp) / "page.html"
        probed.write_text(text + _PROBE, encoding="utf-8")
        dom = _browser(browser, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri())
        _browser(browser, f"--screenshot={shot}", "--window-size=1400,1100", page.as_uri())
    found = re.search(r"<pre id=\"slcolm-probe\">(.*?)</pre>", dom, re.S)
    if not found:
        return {}, [f"{page}: the probe did not run (no result in the rendered page)"]
    probe = json.loads(html.unescape(found.group(1)))
    problems = []
    drawn = {label["text"] for label in probe["labels"]}
    problems += [f"{page}: type {t!r} has no label in the chart" for t in type_names if t not in drawn]
    for label in probe["labels"]:
        if label["width"] < 2 or label["height"] < 2:
            problems.append(f"{page}: label {label['text']!r} is drawn with no size")
        if not label["inside"]:
            problems.append(f"{page}: label {label['text']!r} falls outside the chart")
    images = probe["images"]
    distinct = len(set(images.values()))
    if distinct < len(images):
        problems.append(
            f"{page}: {len(images)} characters drew only {distinct} distinct glyphs (missing font: boxes)"
        )
    summary = {
        "page": str(page),
        "screenshot": str(shot),
        "svg": probe["svg"],
        "labels": len(probe["labels"]),
        "types_in_report": len(type_names),
        "characters": len(images),
        "distinct_glyphs": distinct,
    }
    return summary, problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--page", type=Path, help="a report.html to check (default: build the ChisRE one)")
    parser.add_argument("--schema", default="chisre", help="the page's schema (for its type names)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/chisre"), help="ChisRE corpus")
    parser.add_argument("--out", type=Path, default=Path("bench/results/report_in_browser"))
    args = parser.parse_args()
    browser = find_browser()
    if browser is None:
        print(f"no headless browser found (looked for {', '.join(BROWSERS)})", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    # The ChisRE page quotes corpus sentences, which are never committed: it is built outside.
    scratch = Path(tempfile.mkdtemp(prefix="slcolm-report-"))
    page = (args.page or chisre_page(args.data, scratch)).resolve()
    schema = load_schema(args.schema)
    report_json = page.with_name("report.json")
    if args.page and report_json.is_file():
        per_type = json.loads(report_json.read_text(encoding="utf-8"))["systems"][0]["per_type"]
        names = [t for t in schema.relation_types if t in per_type]
    else:
        names = [t for t in schema.relation_types if html.escape(t) in page.read_text(encoding="utf-8")]
    stem = "chisre" if args.page is None else args.schema
    summary, problems = check_page(browser, page, names, (args.out / f"{stem}.png").resolve())
    summary["browser"] = subprocess.run([browser, "--version"], capture_output=True, text=True).stdout.strip()
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    (args.out / f"{stem}.json").write_text(
        json.dumps({**summary, "problems": problems}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    for line in problems:
        print(line, file=sys.stderr)
    shutil.rmtree(scratch, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
