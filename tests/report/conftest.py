"""A synthetic, finished run directory (no training): train, prune, fine-tune, exits, bench."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def _metrics(acc: float, macs: int, params: int, lat1: float, lat64: float, size: int,
             energy: float, train_s: float) -> dict[str, Any]:
    return {"accuracy": acc, "params": params, "macs": macs, "flops": 2 * macs, "size_bytes": size,
            "latency_ms": {"1": lat1, "64": lat64}, "threads": 2, "energy_j": energy,
            "energy_source": "estimated", "train_seconds": train_s, "peak_memory_bytes": 3 * size}


def make_run(root: Path, name: str = "run", acc_shift: float = 0.0) -> Path:
    """Write summary.json + metrics.jsonl of a plausible 5-stage run under ``root/name``."""
    out = root / name
    out.mkdir(parents=True)
    stages = [
        ("train", "train", _metrics(0.95 + acc_shift, 400_000, 20_000, 0.40, 3.0, 80_000, 2.0e-6, 12.0)),
        ("prune", "prune", _metrics(0.90 + acc_shift, 200_000, 10_000, 0.30, 1.8, 40_000, 1.0e-6, 0.0)),
        ("train", "finetune", _metrics(0.94 + acc_shift, 200_000, 10_000, 0.31, 1.7, 40_000, 1.0e-6, 5.0)),
        ("exits", "exits", {**_metrics(0.93 + acc_shift, 230_000, 12_000, 0.35, 2.0, 48_000, 1.1e-6, 4.0),
                            "backbone_macs": 200_000, "full_accuracy": 0.94, "anytime": [
                                {"exit": 0, "macs": 50_000, "accuracy": 0.6},
                                {"exit": 1, "macs": 120_000, "accuracy": 0.85},
                                {"exit": 2, "macs": 230_000, "accuracy": 0.94}],
                            "accuracy_vs_expected_macs": [
                                {"p": i / 20, "accuracy": 0.6 + 0.34 * i / 10, "expected_macs": 50_000 + 18_000 * i}
                                for i in range(1, 11)],
                            "budgets": [{"budget_fraction": f, "budget_macs": f * 200_000,
                                         "test_accuracy": 0.7 + 0.3 * f,
                                         "test_expected_macs": f * 190_000, "wall_clock": {"speedup": 1 / f}}
                                        for f in (0.25, 0.5, 0.75)]}),
        ("bench", "bench", {"bench": [
            {"backend": b, "batch_size": bs, "threads": 2, "status": "ok", "latency_ms": 0.2 * bs ** 0.5,
             "p90_ms": 0.25 * bs ** 0.5, "throughput": bs / (0.2e-3 * bs ** 0.5), "size_bytes": 40_000,
             "max_abs_diff": 1e-6, "top1_agreement": 1.0} for b in ("eager", "onnxruntime") for bs in (1, 64)]}),
    ]
    summary = {"recipe": f"fake-{name}", "out_dir": str(out), "seed": 0, "device": "cpu", "world_size": 1,
               "threads": 2, "total_seconds": 21.0, "versions": {"leandl": "0.1.0", "torch": "2.13.0"},
               "machine": "x86_64", "units": {"accuracy": "fraction in [0, 1]"},
               "stages": [{"index": i, "kind": k, "name": n, "dir": f"{i:02d}-{k}", "metrics": m}
                          for i, (k, n, m) in enumerate(stages)]}
    (out / "summary.json").write_text(json.dumps(summary))
    lines = [{"event": "run_start"}]
    for i, (kind, _, m) in enumerate(stages):
        if kind not in ("train", "exits"):
            continue
        for e in range(4):
            lines.append({"event": "epoch", "stage": f"{i:02d}-{kind}", "epoch": e, "step": 10 * e,
                          "train_loss": (1.5 - 0.2 * i) / (e + 1), "train_accuracy": 0.5 + 0.1 * e - 0.03 * i,
                          "val_loss": (1.6 - 0.2 * i) / (e + 1), "val_accuracy": 0.45 + 0.1 * e - 0.03 * i,
                          "epoch_seconds": 1.0})
    lines.append({"event": "run_end"})
    (out / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{truncated")
    return out


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    """A synthetic finished run directory."""
    return make_run(tmp_path)


@pytest.fixture
def run_factory() -> Any:
    """``make_run(root, name, acc_shift)``: write further synthetic runs."""
    return make_run
