"""Read a run directory into plain data the report renders: stages, epochs, run facts.

A run directory (see :mod:`leandl.recipes.runner`) holds ``summary.json`` (one entry per stage
with its measured ``metrics``) and ``metrics.jsonl`` (one JSON object per event; ``epoch``
records carry ``stage``, ``epoch``, ``train_loss``, ``train_accuracy``, ``val_accuracy``,
``val_loss``). Nothing here imports torch or matplotlib.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leandl.errors import UsageError

__all__ = ["RunData", "StagePoint", "load_run", "read_epochs"]

_EPOCH_KEYS = ("train_accuracy", "val_accuracy", "train_loss", "val_loss")


@dataclass
class StagePoint:
    """One stage of one run as the report sees it.

    Attributes:
        label: ``NN-kind`` (or ``run/NN-kind`` when several runs are compared).
        run: the run's display name.
        kind: the stage kind (``train``, ``prune``, ``exits``, ...).
        name: the stage's own name (``finetune``) or its kind.
        metrics: the stage's measured metrics from ``summary.json``.
    """

    label: str
    run: str
    kind: str
    name: str
    metrics: dict[str, Any]

    @property
    def display(self) -> str:
        """The label, with the stage's own name when it differs from its kind (``03-train (finetune)``)."""
        return self.label if self.name == self.kind else f"{self.label} ({self.name})"

    def number(self, key: str) -> float | None:
        """``metrics[key]`` as a float, or None when absent or not a finite number."""
        value = self.metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if value == value and abs(value) != float("inf") else None

    def latency(self, batch_size: str) -> float | None:
        """Median latency in ms at ``batch_size`` (a string key), or None."""
        lat = self.metrics.get("latency_ms") or {}
        value = lat.get(batch_size) if isinstance(lat, dict) else None
        return float(value) if isinstance(value, (int, float)) else None


@dataclass
class RunData:
    """Everything the report needs from one run directory."""

    path: Path
    name: str
    summary: dict[str, Any]
    stages: list[StagePoint]
    epochs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def units(self) -> dict[str, str]:
        """The run's unit strings (``summary["units"]``)."""
        return dict(self.summary.get("units") or {})


def read_epochs(metrics_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Epoch records of ``metrics.jsonl`` grouped by stage, in file order.

    On ``--resume`` an epoch can be logged twice; the later record wins. Unparseable lines
    (a run killed mid-write) are skipped.
    """
    out: dict[str, dict[int, dict[str, Any]]] = {}
    if not metrics_path.exists():
        return {}
    for line in metrics_path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or rec.get("event") != "epoch" or "epoch" not in rec:
            continue
        stage = str(rec.get("stage") or "run")
        row = {"epoch": int(rec["epoch"]), **{k: rec.get(k) for k in _EPOCH_KEYS}}
        out.setdefault(stage, {})[row["epoch"]] = row
    return {s: [rows[e] for e in sorted(rows)] for s, rows in out.items()}


def load_run(run_dir: str | Path, name: str | None = None, prefix: bool = False) -> RunData:
    """Load ``run_dir`` (must hold ``summary.json``).

    Args:
        run_dir: the run directory.
        name: display name of the run (default: the directory name).
        prefix: label stages ``name/NN-kind`` (used when several runs share one plot).

    Raises:
        UsageError: the directory or its ``summary.json`` is missing or unreadable.
    """
    path = Path(run_dir)
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise UsageError(f"{path} is not a finished run directory: no summary.json there; "
                         "pass the --out directory of a completed `leandl run`")
    try:
        summary = json.loads(summary_path.read_text())
    except json.JSONDecodeError as err:
        raise UsageError(f"{summary_path} is not valid JSON ({err}); re-run the recipe to rewrite it") from err
    run_name = name or path.resolve().name
    stages = []
    for i, st in enumerate(summary.get("stages") or []):
        base = str(st.get("dir") or f"{i:02d}-{st.get('kind', 'stage')}")
        stages.append(StagePoint(label=f"{run_name}/{base}" if prefix else base, run=run_name,
                                 kind=str(st.get("kind", "")), name=str(st.get("name") or st.get("kind", "")),
                                 metrics=dict(st.get("metrics") or {})))
    epochs = read_epochs(path / "metrics.jsonl")
    if prefix:
        epochs = {f"{run_name}/{k}": v for k, v in epochs.items()}
    return RunData(path=path, name=run_name, summary=summary, stages=stages, epochs=epochs)
