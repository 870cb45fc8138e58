"""Issue 20 (part C): the never-benchmarked techniques measured, the null/negative ones re-examined.

One row group per technique, each against its natural baseline in the same run, same seeds
(paired), small models on small data so every group takes a few minutes on a loaded CPU:
MNIST-1D with 3000 samples (2160 train / 240 val / 600 test) unless a group says otherwise,
``mnist1d_cnn`` students, one intra-op thread. Each row holds the metric's mean +- std over
seeds, ``n``, the group's ``baseline`` method, the paired ``delta`` (method - baseline, per seed,
mean +- std), a ``verdict`` (positive: delta mean - std > 0; negative: delta mean + std < 0;
else null) and ``finding``: what the number means, and for null/negative results why.

Usage: ``python benchmarks/issue20_existing.py --only NAME[,NAME...] [--seeds 3] [--quick]``
(``--list`` names the groups). Results merge into ``benchmarks/results/issue20_existing.json``
(rows of the groups run are replaced; the others kept). A group's ``baseline_of`` gives a
variant its own baseline (e.g. a width-16 student against the width-16 student alone). ``--findings`` rewrites only the
``finding`` texts from :data:`FINDINGS` (written after reading the numbers).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, base_parser, mean_std, print_table, row, versions  # noqa: E402
from _issue20_groups import FINDINGS, GROUPS  # noqa: E402

OUT = RESULTS / "issue20_existing.json"


def verdict(deltas: list[float]) -> str:
    """positive / negative when the paired mean delta is more than one std from 0, else null."""
    m, s = mean_std(deltas)
    return "positive" if m - s > 0 else "negative" if m + s < 0 else "null"


def group_rows(name: str, spec: dict[str, Any], results: dict[str, list[dict[str, float]]],
               seconds: float) -> list[dict[str, Any]]:
    """Rows of one group: every (method, metric) with its paired delta against the baseline."""
    base, rows = spec["baseline"], []
    load = [round(v, 2) for v in os.getloadavg()]
    for method, per_seed in results.items():
        for metric in per_seed[0]:
            vals = [r[metric] for r in per_seed]
            extra: dict[str, Any] = {
                "group": name, "baseline": base, "units": spec.get("units", {}).get(metric, "fraction (test split)"),
                "settings": spec.get("settings", ""), "seeds": len(vals), "group_seconds": round(seconds, 1),
                "load_avg": load, "threads": torch.get_num_threads(), "finding": FINDINGS.get(name, ""),
            }
            ref = spec.get("baseline_of", {}).get(method, base)  # a variant may have its own baseline
            extra["baseline"] = ref
            if method != ref and metric in results[ref][0]:
                deltas = [a - b[metric] for a, b in zip(vals, results[ref], strict=True)]
                dm, ds = mean_std(deltas)
                extra.update(delta=dm, delta_std=ds, verdict=verdict(deltas))
            rows.append(row(method, metric, vals, **extra))
    return rows


def merge(rows: list[dict[str, Any]], groups: set[str], out: Path) -> None:
    """Replace the rows of ``groups`` in ``out`` (other groups' rows kept)."""
    old = json.loads(out.read_text()) if out.is_file() else []
    keep = [r for r in old if r.get("group") not in groups]
    stamp = {"date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "versions": versions()}
    for r in rows:
        r.update({k: v for k, v in stamp.items() if k not in r})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(keep + rows, indent=1) + "\n")
    print(f"wrote {out} ({len(keep)} kept + {len(rows)} new rows)")


def refresh_findings(out: Path) -> None:
    rows = json.loads(out.read_text())
    for r in rows:
        r["finding"] = FINDINGS.get(r.get("group", ""), r.get("finding", ""))
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"refreshed findings in {out}")


def markdown(out: Path) -> str:
    """A compact RESULTS.md section: per group the primary metric of every method, delta, verdict, finding."""
    rows = json.loads(out.read_text())
    lines = ["## issue20_existing", "", f"- command: `python benchmarks/issue20_existing.py --only NAME` (one group at a "
             f"time; {rows[0]['date'][:10]}); mean +- std over n seeds; delta = paired (method - baseline) per seed; "
             "verdict: positive / negative when |mean delta| > its std, else null", ""]
    for name, spec in GROUPS.items():
        mine = [r for r in rows if r.get("group") == name and r["metric"] == spec["metric"]]
        if not mine:
            continue
        lines += [f"### {name}: {spec['title']}", "", f"settings: {spec.get('settings', '')}", "",
                  "| method | metric | mean | std | n | baseline | delta | verdict |", "|---|---|---|---|---|---|---|---|"]
        for r in mine:
            delta = f"{r['delta']:+.4f} +- {r['delta_std']:.4f}" if "delta" in r else "-"
            lines.append(f"| {r['method']} | {r['metric']} | {r['mean']:.4f} | {r['std']:.4f} | {r['n']} | "
                         f"{r['baseline']} | {delta} | {r.get('verdict', 'baseline')} |")
        lines += ["", f"finding: {mine[0]['finding']}", ""]
    return "\n".join(lines)


def run_group(name: str, seeds: list[int], quick: bool) -> list[dict[str, Any]]:
    spec = GROUPS[name]
    t0 = time.perf_counter()
    results: dict[str, list[dict[str, float]]] = {m: [] for m in spec["methods"]}
    for seed in seeds:  # interleaved: every method of a seed before the next seed
        for method, fn in spec["methods"].items():
            res = fn(seed, quick)
            results[method].append(res if isinstance(res, dict) else {spec["metric"]: float(res)})
            print(f"  {name} seed {seed} {method}: "
                  + ", ".join(f"{k}={v:.4f}" for k, v in results[method][-1].items()), flush=True)
    rows = group_rows(name, spec, results, time.perf_counter() - t0)
    print_table(rows, f"{name} ({time.perf_counter() - t0:.0f} s)")
    return rows


def main() -> None:
    p = base_parser("issue20_existing", __doc__.splitlines()[0])
    p.add_argument("--only", default="", help="comma-separated group names")
    p.add_argument("--list", action="store_true")
    p.add_argument("--findings", action="store_true", help="only rewrite the finding texts")
    p.add_argument("--markdown", action="store_true", help="print the RESULTS.md section of the JSON")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.list:
        print("\n".join(f"{k}: {v['title']}" for k, v in GROUPS.items()))
        return
    out = args.out if args.out != RESULTS / "issue20_existing.json" else OUT
    if args.quick and out == OUT:  # smoke runs never overwrite the measured rows
        out = Path("/tmp/issue20_existing.quick.json")
    if args.findings:
        refresh_findings(out)
        return
    if args.markdown:
        print(markdown(out))
        return
    names = [n for n in args.only.split(",") if n] or list(GROUPS)
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        raise SystemExit(f"unknown group(s) {unknown}; --list names them")
    seeds = list(range(1 if args.quick else args.seeds))
    for name in names:
        rows = run_group(name, seeds, args.quick)
        merge(rows, {name}, out)


if __name__ == "__main__":
    main()
