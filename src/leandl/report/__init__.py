"""Run reports: ``report.md`` and a self-contained ``report.html`` for one run or several.

:func:`write_report` is called by the recipe runner at the end of every run and by
``leandl report RUN_DIR``; :func:`compare_runs` (``leandl compare A B ... --out DIR``) puts the
stages of several runs on the same tables and plots, each labelled ``run/stage``.

What a report holds: run facts (recipe, seed, device, threads, versions); a per-stage table of
test accuracy and every measured cost with units; Pareto plots of accuracy against MACs,
latency at each measured batch size, weights size and energy (the non-dominated stages joined
by the front); training curves; for early-exit stages the accuracy-vs-expected-MACs curve and
budget table; variant tables of ``compare`` stages; and the deployment benchmark table.

matplotlib is imported only when a report is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from leandl.errors import UsageError

__all__ = ["write_report", "compare_runs"]


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report_files/*.png`` and ``report.html`` into ``run_dir``.

    Args:
        run_dir: a finished run directory (holds ``summary.json``).

    Returns:
        ``{"md": ..., "html": ..., "plot:<name>": ...}``: every file written.

    Raises:
        UsageError: ``run_dir`` holds no readable ``summary.json``.
    """
    from leandl.report.document import build_report, write_html, write_markdown
    from leandl.report.load import load_run

    run = load_run(run_dir)
    recipe = run.summary.get("recipe") or run.name
    report = build_report([run], title=f"leandl report: {recipe} ({run.name})")
    out = write_markdown(report, run.path)
    out["html"] = write_html(report, run.path)
    return out


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """Write one report over several runs into ``out_dir``; stages are labelled ``run/stage``.

    Runs with the same directory name are told apart by a numeric suffix (``run``, ``run-2``).

    Raises:
        UsageError: fewer than two runs, or a run directory without ``summary.json``.
    """
    from leandl.report.document import build_report, write_html, write_markdown
    from leandl.report.load import load_run

    if len(run_dirs) < 2:
        raise UsageError(f"compare needs at least two run directories, got {len(run_dirs)}; "
                         "for one run use `leandl report RUN_DIR`")
    names: list[str] = []
    for d in run_dirs:
        base = Path(d).resolve().name
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    runs = [load_run(d, name=n, prefix=True) for d, n in zip(run_dirs, names, strict=True)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(runs, title="leandl comparison: " + ", ".join(names))
    written = write_markdown(report, out)
    written["html"] = write_html(report, out)
    return written
