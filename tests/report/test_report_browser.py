"""Render report.html in headless Chromium: every image decoded, the tables present.

The page under test is a copy of report.html with one inline script appended that, on the
``load`` event, writes a JSON verdict into ``<pre id="leandl-check">``; Chromium's
``--dump-dom`` prints the DOM after load, and the test parses the verdict from it. Network
access is not needed (the report is self-contained) and is cut off with a proxy that does not
exist, so a report that referenced anything external would show broken images.

The window is 1280 px wide: the page must not be wider (tables scroll inside their own box,
figures shrink to the column). Skipped with the reason when no Chromium binary is installed (Debian: ``apt-get install -y
chromium``; see docs/report.md).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from leandl.report import write_report

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = {images: imgs.length,
             loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
             widths: imgs.map(function (i) { return i.naturalWidth; }),
             tables: document.querySelectorAll("table").length,
             stage_rows: document.querySelectorAll("table.stages tbody tr").length,
             bench_rows: document.querySelectorAll("table.bench tbody tr").length,
             viewport: window.innerWidth,
             page_width: document.documentElement.scrollWidth,
             figures_width: Math.max.apply(null, imgs.map(function (i) { return i.getBoundingClientRect().right; }))};
  var pre = document.createElement("pre");
  pre.id = "leandl-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _browser() -> str | None:
    env = os.environ.get("LEANDL_CHROMIUM")
    if env:
        return env
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def render_check(page: Path, tmp: Path, browser: str) -> dict[str, object]:
    """Open ``page`` (plus the check script) headless and return the verdict the script wrote."""
    probe = tmp / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _CHECK + "\n</body>"), encoding="utf-8")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--no-default-browser-check", "--proxy-server=127.0.0.1:9",
           f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=10000", "--window-size=1280,900", "--dump-dom",
           probe.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    match = re.search(r'<pre id="leandl-check">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"no verdict in Chromium's DOM dump (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


@pytest.mark.slow
def test_report_renders_in_headless_chromium(fake_run: Path, tmp_path: Path) -> None:
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium/Chrome binary on PATH (Debian: apt-get install -y chromium; "
                    "or set LEANDL_CHROMIUM=/path/to/chrome)")
    files = write_report(fake_run)
    n_plots = sum(k.startswith("plot:") for k in files)
    got = render_check(files["html"], tmp_path, browser)
    assert got["images"] == n_plots and got["loaded"] == n_plots, got
    assert all(w >= 300 for w in got["widths"]), got
    assert got["stage_rows"] == 5 and got["bench_rows"] == 4 and got["tables"] >= 4, got
    # at 1280 px the page needs no horizontal scrolling: wide tables scroll inside their own box
    assert got["viewport"] == 1280 and got["page_width"] <= 1280 and got["figures_width"] <= 1280, got
