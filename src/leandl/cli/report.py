"""``leandl report RUN_DIR`` and ``leandl compare RUN_A RUN_B ... --out DIR``."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``report`` and ``compare`` commands."""

    @app.command("report")
    def report_cmd(
        run_dir: Path = typer.Argument(..., help="a finished run directory (holds summary.json)"),
    ) -> None:
        """Regenerate report.md and the self-contained report.html of a run."""
        from leandl.report import write_report

        files = write_report(run_dir)
        typer.echo(f"wrote {files['html']} and {files['md']} ({sum(k.startswith('plot:') for k in files)} plots)")

    @app.command("compare")
    def compare_cmd(
        run_dirs: list[Path] = typer.Argument(..., help="two or more finished run directories"),
        out: Path = typer.Option(..., "--out", "-o", help="directory for report.md / report.html"),
    ) -> None:
        """Put several runs on the same tables and plots (stages labelled run/stage)."""
        from leandl.report import compare_runs

        files = compare_runs(run_dirs, out)
        typer.echo(f"wrote {files['html']} and {files['md']} ({sum(k.startswith('plot:') for k in files)} plots)")
