"""Sensitivity analysis: validation accuracy of each channel group pruned alone, vs the ratio.

What: for every prunable group ``g`` and ratio ``r`` in ``ratios``, mask (zero) the
``floor(r * size_g)`` lowest-scored units of ``g`` only, with no fine-tuning, and evaluate;
then restore the weights. Masking zeroes the producing weights, biases and BN weight and bias
of the units, so a masked unit outputs exactly 0 and the accuracy equals that of the
physically pruned model. The curves ``acc_g(r)`` show which groups are fragile (Li et al.:
sensitive layers get small ratios or none).

Ratios for a target: :func:`ratios_for_drop` gives each group the largest ratio whose accuracy
drop from the unpruned model is ``<= max_drop`` (``acc_0 - acc_g(r) <= delta``).

Cost: ``len(groups) * len(ratios)`` evaluations of the validation split.
Paper: Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017, arXiv 1608.08710.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.prune.schedules import _masks as M

__all__ = ["sensitivity_curves", "ratios_for_drop", "save_sensitivity", "plot_sensitivity"]

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@torch.no_grad()
def sensitivity_curves(model: nn.Module, example_inputs: torch.Tensor, eval_fn: Callable[[nn.Module], float], *,
                       criterion: str = "l1", ratios: Sequence[float] = DEFAULT_RATIOS,
                       ignored_layers: Iterable[str] = (), groups: Sequence[Any] | None = None) -> dict[str, Any]:
    """Accuracy vs pruning ratio for every group, each pruned alone (no fine-tuning).

    Args:
        model: the trained network (restored bit-exactly afterwards).
        example_inputs: one input batch, for tracing the groups.
        eval_fn: ``model -> accuracy`` on a validation split.
        criterion: registered criterion name ranking the units.
        ratios: fractions of each group's units to remove, in (0, 1).
        ignored_layers: layers whose outputs are not analysed.
        groups: precomputed groups (default: traced from ``example_inputs``).

    Returns:
        ``{"baseline": acc_0, "ratios": [...], "criterion": ..., "groups": {name: {"size": n,
        "kind": ..., "accuracy": [acc per ratio], "removed": [units per ratio]}}}``.
    """
    for r in ratios:
        if not 0.0 < r < 1.0:
            raise ValueError(f"every ratio must be in (0, 1), got {r}")
    groups = list(groups) if groups is not None else M.discover_groups(model, example_inputs, ignored_layers)
    scores = M.criterion_scores(model, groups, criterion)
    out: dict[str, Any] = {"baseline": float(eval_fn(model)), "ratios": [float(r) for r in ratios],
                           "criterion": criterion, "groups": {}}
    for g in groups:
        saved = M.snapshot_units(model, g, range(g.size))
        accs, removed = [], []
        for r in ratios:
            n = min(int(math.floor(r * g.size)), g.size - 1)
            mask = M.masks_from_scores({g.name: scores[g.name]}, {g.name: n})
            M.apply_group_masks_(model, [g], mask)
            accs.append(float(eval_fn(model)))
            removed.append(n)
            M.restore_units_(model, range(g.size), saved)
        out["groups"][g.name] = {"size": g.size, "kind": g.kind, "accuracy": accs, "removed": removed}
    return out


def ratios_for_drop(curves: dict[str, Any], max_drop: float = 0.01) -> dict[str, float]:
    """Per group, the largest ratio whose accuracy drop from the baseline is ``<= max_drop``.

    Ratios above the first one that breaks the limit are not considered (the curve is treated
    as monotone); a group whose smallest ratio already breaks it gets 0.
    """
    base = curves["baseline"]
    out = {}
    for name, g in curves["groups"].items():
        best = 0.0
        for r, acc in zip(curves["ratios"], g["accuracy"]):
            if base - acc > max_drop:
                break
            best = r
        out[name] = best
    return out


def plot_sensitivity(curves: dict[str, Any], path: str | Path) -> Path:
    """Write a PNG of accuracy vs ratio, one line per group (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, g in curves["groups"].items():
        ax.plot(curves["ratios"], g["accuracy"], marker="o", label=f"{name} ({g['size']})")
    ax.axhline(curves["baseline"], color="grey", linestyle="--", linewidth=1, label="unpruned")
    ax.set_xlabel("fraction of the group's units removed")
    ax.set_ylabel("validation accuracy (no fine-tuning)")
    ax.set_title(f"pruning sensitivity ({curves['criterion']})")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def save_sensitivity(curves: dict[str, Any], out_dir: str | Path, max_drop: float | None = 0.01) -> dict[str, Path]:
    """Write ``sensitivity.json`` (curves, plus ratios for ``max_drop``) and ``sensitivity.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = dict(curves)
    if max_drop is not None:
        data["max_drop"] = max_drop
        data["ratios_for_drop"] = ratios_for_drop(curves, max_drop)
    js = out_dir / "sensitivity.json"
    js.write_text(json.dumps(data, indent=2) + "\n")
    return {"json": js, "png": plot_sensitivity(curves, out_dir / "sensitivity.png")}
