"""Report units and layout: SI bytes, accuracy in % with axes clipped to the data, exits at their
expected MACs, NOISY latencies, legends that fit, and a page that fits 1280 px (CSS rules; the
headless-browser check is tests/report/test_report_browser.py, skipped where no Chromium exists)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from leandl.report import compare_runs, write_report
from leandl.report.load import StagePoint
from leandl.report.pareto import accuracy_limits, legend_columns
from leandl.report.tables import fmt_bytes, stage_table


def test_si_bytes_by_hand() -> None:
    assert fmt_bytes(80_000) == "80 kB" and fmt_bytes(1_234_567) == "1.23 MB" and fmt_bytes(999) == "999 B"
    assert fmt_bytes(2.5e9) == "2.5 GB"


def test_accuracy_axis_hugs_the_data() -> None:
    assert accuracy_limits([99.0, 99.5]) == (98.75, 99.75)  # span 1 (minimum), 25 % room
    lo, hi = accuracy_limits([96.0, 100.0])
    assert lo == 95.0 and hi == 100.5  # never to 110 %
    assert accuracy_limits([0.2, 2.0])[0] == 0.0  # never below 0 %


def _stage(kind: str, **m) -> StagePoint:
    return StagePoint(label=f"01-{kind}", run="r", kind=kind, name=kind, metrics=m)


def test_stage_table_exits_at_expected_macs_and_noisy_latency() -> None:
    exits = _stage("exits", accuracy=0.968, macs=2_160_000, expected_macs=1_050_000, wall_clock_speedup=2.0,
                   latency_ms={"1": 0.8}, latency={"1": {"median_ms": 0.8, "p90_ms": 2.0}})
    table = stage_table([exits])
    row = dict(zip(table.headers, table.rows[0], strict=True))
    assert row["MACs / sample"] == "1.05 M expected"  # not the 2.16 M of every head run together
    assert row["latency b=1 (ms / batch)"] == "0.4 NOISY (p90 = 2.5× median)"
    assert row["test accuracy"] == "96.80 %"


def test_legend_columns_fit_the_figure() -> None:
    from leandl.report.figure import new_figure, pyplot

    fig, _ = new_figure(width=6.4)
    long = [f"comparison-run-number-{i}/03-train (finetune)" for i in range(6)]
    assert legend_columns(fig, long) == 1
    assert legend_columns(fig, ["a", "b", "c", "d", "e"]) == 4
    pyplot().close(fig)


def _png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_comparison_legend_is_inside_the_image(tmp_path: Path, run_factory) -> None:
    runs = [run_factory(tmp_path / f"r{i}", f"a-long-comparison-run-name-{i}") for i in range(3)]
    files = compare_runs(runs, tmp_path / "cmp")
    from PIL import Image

    img = Image.open(files["plot:pareto-macs"]).convert("L")
    w, h = img.size
    # the legend's frame and text reach the bottom rows: something is drawn there, and the
    # outermost column of pixels stays blank (nothing runs off the right or left edge)
    bottom = img.crop((0, int(h * 0.75), w, h))
    assert bottom.getextrema()[0] < 128
    for x in (0, w - 1):
        assert img.crop((x, 0, x + 1, h)).getextrema()[0] > 200, x


def test_html_fits_1280px_by_css(fake_run: Path) -> None:
    page = write_report(fake_run)["html"].read_text()
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    max_width = int(re.search(r"body\{[^}]*max-width:(\d+)px", css).group(1))
    assert max_width <= 1280
    assert re.search(r"\.scroll\{overflow-x:auto", css) and re.search(r"figure img\{max-width:100%", css)
    assert re.search(r"th\{white-space:normal", css)  # headers wrap
    # every table sits in a horizontally scrolling box, so no table can widen the page
    assert page.count("<table") == page.count('<div class="scroll"><h3>') + page.count('<div class="scroll"><table')
    assert page.count("<table") >= 4


def test_report_units_one_per_quantity(fake_run: Path) -> None:
    md = write_report(fake_run)["md"].read_text()
    assert "KiB" not in md and "MiB" not in md and "kB" in md
    summary = json.loads((fake_run / "summary.json").read_text())
    accs = [s["metrics"]["accuracy"] for s in summary["stages"] if "accuracy" in s["metrics"]]
    for a in accs:
        assert f"{100 * a:.2f} %" in md
