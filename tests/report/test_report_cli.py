"""``leandl report RUN_DIR`` and ``leandl compare A B --out DIR`` through the CLI entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leandl.cli import main


def test_report_and_compare_commands(tmp_path: Path, run_factory: Any, capsys: Any) -> None:
    a, b = run_factory(tmp_path, "a"), run_factory(tmp_path, "b", acc_shift=0.02)
    for name in ("report.html", "report.md"):
        assert not (a / name).exists()
    assert main(["report", str(a)]) == 0
    assert (a / "report.html").stat().st_size > 10_000 and "6 plots" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert "| a/00-train |" in md and "| b/00-train | train | 97.00 % |" in md
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no summary.json" in capsys.readouterr().err
