"""Merge the records of several ``zoo.py`` runs (e.g. one per family, run side by side) into
one results file, and print the per-family table.

Usage:
    python benchmarks/_zoo_merge.py RUN1/zoo.records.json RUN2/zoo.records.json \
        --out benchmarks/results/zoo.json

A (model, tool, seed) recorded by several runs keeps the last one given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("records", nargs="+", type=Path, help="zoo.records.json files")
    p.add_argument("--out", type=Path, required=True, help="merged JSON (rows)")
    p.add_argument("--settings-from", type=Path, default=None,
                   help="a records file whose run settings describe the merge (default: first)")
    args = p.parse_args()
    merged: dict[tuple[str, str, int], dict] = {}
    for path in args.records:
        for rec in json.loads(path.read_text()):
            merged[(rec["model"], rec["tool"], rec.get("seed", 0))] = rec
    records = list(merged.values())
    families = [f for f in ("torchvision", "timm", "hf") if any(r["family"] == f for r in records)]
    tools = [t for t in ("leandl", "tp") if any(r["tool"] == t for r in records)]
    ns = argparse.Namespace(out=args.out, tp_scope="global", tp_search_counter="tp", timeout=300.0,
                            full_res=False, verdict_counter="full", quick=False,
                            latency_rounds=None, latency_budget=None, timm_fused_attn=False)
    lines = zoo.write_all(records, families, tools, ns, [])
    print("\n".join(lines))
    print(f"wrote {args.out} and {zoo.records_path(args.out)} ({len(records)} records)")


if __name__ == "__main__":
    main()
