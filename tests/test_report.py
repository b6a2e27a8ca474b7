"""The rendered report: escaping, content, size, and the page in a real
headless browser (Debian's chromium)."""

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SAMPLE_RUN_CELLS
from torchparity.report import html as report_html
from torchparity.report import report

PLANTED = "<script>document.title='PWNED'</script><b>bold</b>"  # as in data/report_cases.py
CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"]


def _chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name) or (name if Path(name).is_file() else None)
        if found:
            return found
    return None


def open_headless(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless chromium; returns the DOM after scripts ran and
    the console messages chromium logged (any message at all is a finding: the
    report's script logs nothing)."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium not found (Debian: apt-get install -y chromium)")
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


class _Dom(HTMLParser):
    """Collects the status matrix's cells, the title and all text."""

    def __init__(self) -> None:
        super().__init__()
        self.in_matrix = 0
        self.matrix_cells: list[str] = []
        self.title = ""
        self._in_title = False
        self.text: list[str] = []
        self.script_count = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "status-matrix":
            self.in_matrix = 1
        elif tag == "table" and self.in_matrix:
            self.in_matrix += 1
        if self.in_matrix and tag == "td" and "cell" in (a.get("class") or "").split():
            self.matrix_cells.append(a.get("title") or "")
        self._in_title = tag == "title"
        self.script_count += tag == "script"

    def handle_endtag(self, tag):
        if tag == "table" and self.in_matrix:
            self.in_matrix -= 1
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        self.text.append(data)


def test_report_in_headless_chromium(sample_run, tmp_path):
    dom_text, console = open_headless(sample_run / "report.html", tmp_path)
    assert console == []
    dom = _Dom()
    dom.feed(dom_text)
    assert len(dom.matrix_cells) == SAMPLE_RUN_CELLS
    assert dom.title == "torchparity report"  # the planted script did not run
    assert dom.script_count == 1  # only the report's own script
    assert PLANTED in "".join(dom.text)  # shown as text
    assert any(PLANTED in title for title in dom.matrix_cells)  # the reason on hover, as text


def test_console_check_has_teeth(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><p>x</p><script>notDefinedAnywhere();</script>", encoding="utf-8"
    )
    _, console = open_headless(page, tmp_path)
    assert any("notDefinedAnywhere" in line for line in console)


def test_page_is_self_contained_and_light(sample_run):
    page = (sample_run / "report.html").read_text(encoding="utf-8")
    assert len(page.encode()) < 5 * 2**20
    # No network: no external scripts, styles, images or fonts.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(http" not in page
    for anchor in ("matrix", "throughput", "latency", "drift", "prepare", "problems", "results"):
        assert f"id='{anchor}'" in page
    assert page.count("<svg") >= 3  # throughput, latency and drift charts


def test_markup_is_escaped_everywhere():
    frame = pd.DataFrame(
        [
            {
                "case": "<i>c</i>",
                "device": "cpu",
                "precision": "fp32",
                "backend": "b&q",
                "status": "error",
                "reason": "x' onmouseover='alert(1)",
            }
        ]
    )
    matrix = report_html.status_matrix(frame, frame["backend"])
    assert "<i>" not in matrix and "&lt;i&gt;" in matrix
    assert "x&#x27; onmouseover=&#x27;alert(1)" in matrix  # the attribute cannot be broken out of
    table = report_html.table(frame, "t")
    assert "<i>" not in table and "b&amp;q" in table


def test_summary_markdown(sample_run):
    summary = (sample_run / "summary.md").read_text(encoding="utf-8")
    assert f"{SAMPLE_RUN_CELLS} cells: 4 pass, 2 error, 12 skip" in summary
    for heading in (
        "## Status by backend and precision",
        "## New failures (not marked as known)",
        "## Largest drift",
        "## Fastest and slowest cell per case",
    ):
        assert heading in summary
    # as text, escaped for Markdown without HTML entities (a reader of the raw file reads it)
    assert "\\<script\\>" in summary and "<script>" not in summary and "&lt;" not in summary


def test_console_table_and_render_keep_working(tmp_path):
    rows = [
        {
            "case": "m",
            "kind": "model",
            "suite": "s",
            "device": "cpu",
            "precision": "fp32",
            "backend": "my_backend",
            "status": "pass",
            "reason": "",
            "latency_ms_median": 1.5,
            "throughput_items_s": 2.0,
            "samples_ms": [1.4, 1.5, 1.6],
        },
        {
            "case": "m",
            "kind": "model",
            "suite": "s",
            "device": "cpu",
            "precision": "fp32",
            "backend": "eager",
            "status": "pass",
            "reason": "",
            "latency_ms_median": 3.0,
            "throughput_items_s": 1.0,
            "samples_ms": [2.9, 3.0, 3.1],
        },
    ]
    assert "pass 1.5ms" in report.console_table(rows)
    paths = report.render(rows, tmp_path, {"host": "h"})
    page = paths["html"].read_text(encoding="utf-8")
    assert "cpu/my_backend/fp32" in page and "Speedup needs" not in page  # any backend name works


def test_sorting_and_filtering_script_in_chromium(tmp_path):
    frame = pd.DataFrame({"name": ["a", "b", "c", "bb"], "value": [10.0, 9.0, 100.0, 0.5]})
    page = report_html.page("t", [report_html.table(frame, "t")])
    # Click the "value" header (ascending numeric sort), then filter on "b".
    driver = (
        "<script>document.querySelectorAll('#t th')[1].click();"
        "var f=document.querySelector('input.filter');f.value='b';"
        "f.dispatchEvent(new Event('input'));</script>"
    )
    path = tmp_path / "sort.html"
    path.write_text(page.replace("</body>", driver + "</body>"), encoding="utf-8")
    dom, console = open_headless(path, tmp_path)
    assert console == []
    rows = re.findall(r"<tr(?: style=\"([^\"]*)\")?><td>(\w+)</td>", dom)
    assert [name for _, name in rows] == ["bb", "b", "a", "c"]  # numeric, not text, order
    assert [name for style, name in rows if "none" not in style] == ["bb", "b"]


def test_markdown_tables_keep_names_inert():
    # summary.md goes to $GITHUB_STEP_SUMMARY: a case name must not become an image, link or HTML
    import pandas as pd

    from torchparity.report.report import markdown_table

    text = markdown_table(pd.DataFrame({"case": ["![x](http://e/i.png) <img src=x> a|b"]}))
    assert "![x](" not in text and "a\\|b" in text
    # a backslash before "<" keeps it text in Markdown (no HTML entity for a reader of the raw file)
    assert "\\<img" in text and not re.search(r"(?<!\\)<img", text)
