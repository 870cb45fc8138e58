"""Shared helpers for benchmark scripts: argument parsing, mean/std, JSON rows, tables.

Convention: every script accepts ``--seeds N`` and ``--out PATH``, prints a table and writes a
JSON list of rows, each with ``method``, ``metric``, ``mean``, ``std``, ``n`` and extra keys
(units, batch size, threads, versions).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
from pathlib import Path
from typing import Any

__all__ = ["base_parser", "mean_std", "row", "write_rows", "print_table", "versions"]

RESULTS = Path(__file__).resolve().parent / "results"


def base_parser(name: str, description: str, seeds: int = 3) -> argparse.ArgumentParser:
    """Parser with --seeds, --out (default benchmarks/results/NAME.json) and --quick."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seeds", type=int, default=seeds, help="number of seeds (default %(default)s)")
    p.add_argument("--out", type=Path, default=RESULTS / f"{name}.json", help="JSON output path")
    p.add_argument("--quick", action="store_true", help="small smoke-test settings")
    return p


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def versions() -> dict[str, str]:
    """Versions of the libraries that matter for timings."""
    from leandl.measure import cpu_description

    out = {"python": platform.python_version(), "machine": platform.machine(), "cpu": cpu_description()}
    for mod in ("torch", "onnxruntime", "torch_pruning", "torchao", "leandl"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # a missing optional library is simply not listed
            continue
    return out


def row(method: str, metric: str, values: list[float], **extra: Any) -> dict[str, Any]:
    """One result row: mean/std/n over ``values`` plus extra keys."""
    mean, std = mean_std(values)
    return {"method": method, "metric": metric, "mean": mean, "std": std, "n": len(values),
            "values": [float(v) for v in values], **extra}


def write_rows(rows: list[dict[str, Any]], out: Path, name: str) -> None:
    """Write the rows as JSON (with a header row of versions and date)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"benchmark": name, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions()}
    for r in rows:
        r.setdefault("versions", meta["versions"])
        r.setdefault("date", meta["date"])
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out}")


def finish_rows(rows: list[dict[str, Any]], load_before: tuple[float, ...], skipped: dict[str, str]) -> None:
    """Stamp every row with the load average before and now; append a ``skipped`` row (the
    variants that could not be built, with reasons) when there are any."""
    import os

    load_after = list(os.getloadavg())
    for r in rows:
        r["loadavg_before"], r["loadavg_after"] = list(load_before), load_after
    if skipped:
        rows.append({"method": "skipped", "metric": "reasons", "mean": float("nan"), "std": float("nan"), "n": 0,
                     "values": [], "reasons": skipped})


def print_table(rows: list[dict[str, Any]], title: str = "") -> None:
    """Print rows as an aligned text table: method, metric, mean +- std (n), units."""
    if title:
        print(f"\n{title}")
    w = max([len(str(r["method"])) for r in rows] + [6])
    m = max([len(str(r["metric"])) for r in rows] + [6])
    print(f"{'method':<{w}}  {'metric':<{m}}  {'mean':>12}  {'std':>10}  n  units")
    for r in rows:
        print(f"{r['method']:<{w}}  {r['metric']:<{m}}  {r['mean']:>12.5g}  {r['std']:>10.3g}  {r['n']}  "
              f"{r.get('units', '')}")
