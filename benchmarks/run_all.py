"""Run every benchmark script and collate their JSON results into benchmarks/RESULTS.md.

Each ``benchmarks/NAME.py`` (except ``_*.py`` and this file) runs as a subprocess with its own
defaults plus ``--out RESULTS_DIR/NAME.json`` (and ``--quick`` when given here). Its output goes
to ``RESULTS_DIR/NAME.log``. RESULTS.md then holds, per benchmark, a table built only from the
JSON rows the script wrote during this run (``method``, ``metric``, ``mean``, ``std``, ``n``,
``units`` and every other key that varies between rows; keys equal on every row are listed as
settings), with the machine (CPU model from /proc/cpuinfo, cores), versions, threads, date and
the exact command. A script that fails, times out or writes no fresh JSON is listed as failed
with its exit code and the last lines of its output.

Usage::

    python benchmarks/run_all.py                       # every benchmark, full settings
    python benchmarks/run_all.py --quick --only swa,qat --timeout 600
    python benchmarks/run_all.py --collect-only        # re-collate existing JSON, run nothing
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
_STANDARD = ("method", "metric", "mean", "std", "n", "units")
_HIDDEN = ("versions", "date", "values")
TAIL_LINES = 15


@dataclass
class Outcome:
    """What happened to one benchmark script."""

    name: str
    command: list[str]
    status: str  # "ok", "failed", "timeout", "collected", "missing"
    returncode: int | None = None
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    tail: str = ""
    reason: str = ""


# scripts in benchmarks/ that are tools, not benchmarks (they write no results JSON)
TOOLS = frozenset({"run_all.py", "readme_table.py", "check_readme.py"})


def discover(bench_dir: Path, only: list[str] | None = None) -> list[Path]:
    """Benchmark scripts in ``bench_dir``: ``*.py`` minus ``_*.py`` and the :data:`TOOLS`, by name."""
    scripts = sorted(p for p in bench_dir.glob("*.py") if not p.name.startswith("_") and p.name not in TOOLS)
    if only:
        known = {p.stem for p in scripts}
        missing = [n for n in only if n not in known]
        if missing:
            raise SystemExit(f"--only: no benchmark named {missing} in {bench_dir}; have {sorted(known)}")
        scripts = [p for p in scripts if p.stem in only]
    return scripts


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON rows of a result file (a list of objects, or ``{"rows": [...]}``); raises
    ValueError otherwise."""
    data = json.loads(path.read_text())
    if isinstance(data, dict) and isinstance(data.get("rows"), list):  # {"summary": ..., "rows": [...]}
        data = data["rows"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"{path} does not hold a JSON list of objects")
    return data


def _tail(text: str, n: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def run_one(script: Path, results_dir: Path, quick: bool, timeout: float | None, python: str) -> Outcome:
    """Run ``script`` with ``--out results_dir/NAME.json``; accept only JSON written by this run."""
    out = results_dir / f"{script.stem}.json"
    cmd = [python, str(script), "--out", str(out)] + (["--quick"] if quick else [])
    before = out.stat().st_mtime_ns if out.exists() else None
    t0 = time.perf_counter()
    print(f"[run_all] {script.stem}: {shlex.join(cmd)}", flush=True)
    try:
        proc = subprocess.run(cmd, cwd=script.parent.parent, capture_output=True, text=True, timeout=timeout)
        log, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        log = _decode(exc.stdout) + _decode(exc.stderr)
        (results_dir / f"{script.stem}.log").write_text(log)
        return Outcome(script.stem, cmd, "timeout", None, time.perf_counter() - t0, tail=_tail(log),
                       reason=f"timed out after {timeout:g} s")
    seconds = time.perf_counter() - t0
    (results_dir / f"{script.stem}.log").write_text(log)
    if rc != 0:
        return Outcome(script.stem, cmd, "failed", rc, seconds, tail=_tail(log), reason=f"exit code {rc}")
    if not out.exists() or out.stat().st_mtime_ns == before:
        return Outcome(script.stem, cmd, "failed", rc, seconds, tail=_tail(log),
                       reason=f"exit code 0 but no fresh result file at {out}")
    try:
        rows = read_rows(out)
    except ValueError as err:
        return Outcome(script.stem, cmd, "failed", rc, seconds, tail=_tail(log), reason=str(err))
    return Outcome(script.stem, cmd, "ok", rc, seconds, rows=rows)


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def collect_one(script: Path, results_dir: Path) -> Outcome:
    """Use an existing result file without running the script (``--collect-only``)."""
    out = results_dir / f"{script.stem}.json"
    if not out.exists():
        return Outcome(script.stem, [], "missing", None, reason=f"not run (--collect-only) and no {out}")
    try:
        return Outcome(script.stem, [], "collected", None, rows=read_rows(out))
    except (ValueError, json.JSONDecodeError) as err:
        return Outcome(script.stem, [], "failed", None, reason=str(err))


def machine() -> dict[str, Any]:
    """CPU model and core counts (from /proc/cpuinfo and the OS), memory, OS, Python."""
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "logical_cores": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        models = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")]
        cores = {(ln.split(":", 1)[1].strip()) for ln in text.splitlines() if ln.startswith("core id")}
        if models:
            info["cpu"] = models[0]
        if cores:
            info["physical_cores_per_socket"] = len(cores)
    except OSError:
        pass
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    try:
        kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemTotal"))
        info["memory"] = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    info["os"] = f"{platform.system()} {platform.release()}"
    info["python"] = platform.python_version()
    return info


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":")).replace("|", "\\|")
    return str(value).replace("|", "\\|")


def rows_table(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """Markdown table lines of ``rows`` and the settings (extra keys equal on every row)."""
    extra = [k for r in rows for k in r if k not in _STANDARD and k not in _HIDDEN]
    extra = list(dict.fromkeys(extra))
    varying = [k for k in extra if len({_cell(r.get(k, "–")) for r in rows}) > 1]
    settings = {k: rows[0].get(k) for k in extra if k not in varying}
    cols = ["method", "metric", "mean", "std", "n", "units", *varying]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c, "–")) for c in cols) + " |")
    return lines, settings


def _meta(rows: list[dict[str, Any]], key: str) -> str:
    vals = list(dict.fromkeys(_cell(r[key]) for r in rows if key in r))
    return ", ".join(vals) if vals else "not recorded"


def section(o: Outcome) -> list[str]:
    """The RESULTS.md section of one benchmark."""
    lines = [f"## {o.name}", ""]
    cmd = shlex.join(o.command) if o.command else "not run by run_all (collected from an existing result file)"
    if o.status == "missing":
        return lines + [f"No result: {o.reason}.", ""]
    if o.status in ("failed", "timeout"):
        lines += [f"**FAILED**: {o.reason}" + (f" after {o.seconds:.0f} s" if o.seconds else "") + ".", "",
                  f"- command: `{cmd}`", ""]
        if o.tail:
            lines += ["Last lines of its output:", "", "```", o.tail, "```", ""]
        return lines
    versions = list(dict.fromkeys(_cell(r["versions"]) for r in o.rows if "versions" in r))
    table, settings = rows_table(o.rows)
    lines += [f"- status: {o.status}" + (f" (exit code 0, {o.seconds:.0f} s)" if o.status == "ok" else ""),
              f"- command: `{cmd}`", f"- date: {_meta(o.rows, 'date')}", f"- threads: {_meta(o.rows, 'threads')}",
              f"- versions: {'; '.join(versions) or 'not recorded'}"]
    if settings:
        lines.append("- settings: " + ", ".join(f"{k}={_cell(v)}" for k, v in settings.items() if k != "threads"))
    return lines + ["", *table, ""]


def write_results(outcomes: list[Outcome], path: Path, argv: list[str]) -> None:
    """Write RESULTS.md: machine, a status summary and one section per benchmark."""
    m = machine()
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    cores = f"{m.get('logical_cores')} logical cores" + (
        f" ({m['usable_cores']} usable by this process)" if "usable_cores" in m else "")
    lines = ["# Benchmark results", "",
             f"Generated by `{shlex.join(['python', 'benchmarks/run_all.py', *argv])}` on {now}.", "",
             f"- machine: {m['cpu']}, {cores}, {m.get('memory', 'memory unknown')}, {m['os']}, "
             f"Python {m['python']}",
             ("- every number below is read from the JSON file the benchmark wrote in this run; "
              if "--collect-only" not in argv else
              "- collected from the JSON files already in the results directory (no benchmark was re-run; "
              "each section's date says when it ran); ") + "mean ± std over `n` seeds or repeats, units per row.",
             "",
             "| benchmark | status | rows | seconds |", "|---|---|---|---|"]
    for o in outcomes:
        status = o.status if o.status in ("ok", "collected", "missing") else f"FAILED ({o.reason})"
        lines.append(f"| [{o.name}](#{o.name.lower()}) | {status} | {len(o.rows)} | {o.seconds:.0f} |")
    lines.append("")
    for o in outcomes:
        lines += section(o)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="pass --quick to every script (smoke settings)")
    p.add_argument("--only", default="", help="comma list of benchmark names (default: all)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per script (default %(default)s)")
    p.add_argument("--bench-dir", type=Path, default=HERE, help="directory of benchmark scripts")
    p.add_argument("--results-dir", type=Path, default=None, help="JSON/log directory (default BENCH_DIR/results)")
    p.add_argument("--output", type=Path, default=None, help="Markdown file (default BENCH_DIR/RESULTS.md)")
    p.add_argument("--collect-only", action="store_true", help="run nothing; collate the existing JSON files")
    p.add_argument("--python", default=sys.executable, help="interpreter for the scripts (default: this one)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run (or collect) every benchmark, write RESULTS.md; exit 1 when any benchmark failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    bench_dir = args.bench_dir.resolve()
    results_dir = (args.results_dir or bench_dir / "results").resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    only = [n.strip().removesuffix(".py") for n in args.only.split(",") if n.strip()]
    outcomes = []
    for script in discover(bench_dir, only):
        if args.collect_only:
            outcomes.append(collect_one(script, results_dir))
        else:
            outcomes.append(run_one(script, results_dir, args.quick, args.timeout, args.python))
        o = outcomes[-1]
        print(f"[run_all] {o.name}: {o.status} {o.reason} ({len(o.rows)} rows, {o.seconds:.0f} s)", flush=True)
    output = args.output or bench_dir / "RESULTS.md"
    write_results(outcomes, output, argv)
    print(f"[run_all] wrote {output}")
    return 0 if all(o.status in ("ok", "collected") for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
