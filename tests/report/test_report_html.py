"""write_report / compare_runs on a synthetic run: files, tables, inlined plots, no network."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from leandl.errors import UsageError
from leandl.report import compare_runs, write_report


def test_write_report_files_tables_and_inlined_plots(fake_run: Path) -> None:
    files = write_report(fake_run)
    assert files["md"] == fake_run / "report.md" and files["html"] == fake_run / "report.html"
    plots = sorted(k.removeprefix("plot:") for k in files if k.startswith("plot:"))
    assert plots == ["exits", "pareto-energy", "pareto-latency", "pareto-macs", "pareto-size", "training"]
    page = files["html"].read_text()
    imgs = re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == len(plots)
    for data in imgs:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    # self-contained: nothing fetched from anywhere
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page and "@import" not in page
    assert '<table class="stages">' in page and '<table class="bench">' in page
    md = files["md"].read_text()
    # accuracy, every cost with units, energy source, latency per batch size
    for text in ("95.00 %", "400 k", "80 kB", "latency b=1 (ms / batch)", "latency b=64 (ms / batch)",
                 "2 µJ (estimated)", "train (finetune)", "![Accuracy vs MACs](report_files/pareto-macs.png)",
                 "| 0.5 | 85.00 % | 95 k | 2.00× |", "| 04-bench | onnxruntime | 64 |"):
        assert text in md, text
    assert (fake_run / "report_files" / "pareto-macs.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_labels_every_stage_run_slash_stage(tmp_path: Path, run_factory: Any) -> None:
    a, b = run_factory(tmp_path, "base"), run_factory(tmp_path / "other", "base", acc_shift=-0.1)
    files = compare_runs([a, b], tmp_path / "cmp")
    md = files["md"].read_text()
    for label in ("| base/00-train |", "| base-2/00-train |", "| base-2/02-train | train (finetune) | 84.00 % |"):
        assert label in md, label
    assert (tmp_path / "cmp" / "report.html").exists()
    with pytest.raises(UsageError, match="at least two"):
        compare_runs([a], tmp_path / "x")


def test_missing_summary_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="summary.json"):
        write_report(tmp_path)


def test_import_leandl_report_does_not_import_matplotlib() -> None:
    code = "import sys, leandl.report, leandl.report.load; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
