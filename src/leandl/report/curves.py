"""Training curves (accuracy and loss per epoch, per stage) and early-exit accuracy-vs-budget curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from leandl.report.figure import Plot, new_figure, style_for, to_png
from leandl.report.load import StagePoint
from leandl.report.pareto import accuracy_limits, legend_columns

__all__ = ["training_plot", "exits_plot"]


def _series(rows: Sequence[Mapping[str, Any]], key: str, scale: float = 1.0) -> tuple[list[int], list[float]]:
    # metrics.jsonl counts epochs from 0; the plot shows epochs completed (1 = after the first).
    pts = [(int(r["epoch"]) + 1, scale * float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def training_plot(epochs: Mapping[str, Sequence[Mapping[str, Any]]],
                  names: Mapping[str, str] | None = None) -> Plot | None:
    """Two panels, accuracy (%) and loss vs epoch within each stage; train solid, validation dashed.

    Args:
        epochs: epoch records per stage key (``NN-kind``, as in ``metrics.jsonl``).
        names: display name per stage key (default: the key).
    """
    names = names or {}
    stages = [s for s, rows in epochs.items() if rows]
    if not stages:
        return None
    styles = style_for(stages)
    fig, (acc_ax, loss_ax) = new_figure(ncols=2, width=6.0, height=4.2)
    for stage in stages:
        color = styles[stage]["color"]
        for key, ax, scale in (("accuracy", acc_ax, 100.0), ("loss", loss_ax, 1.0)):
            for split, ls in (("train", "-"), ("val", "--")):
                xs, ys = _series(epochs[stage], f"{split}_{key}", scale)
                if xs:
                    ax.plot(xs, ys, ls, color=color, marker="o" if len(xs) < 15 else None, markersize=3.5,
                            linewidth=1.6, label=f"{names.get(stage, stage)} {split}")
    acc_ax.set(xlabel="epochs completed (within stage)", ylabel="accuracy (%)", title="Accuracy per epoch")
    loss_ax.set(xlabel="epochs completed (within stage)", ylabel="loss", title="Loss per epoch")
    if any(v > 0 for line in loss_ax.get_lines() for v in line.get_ydata()):
        ys = [v for line in loss_ax.get_lines() for v in line.get_ydata()]
        if min(ys) > 0 and max(ys) / min(ys) > 30:
            loss_ax.set_yscale("log")
    for ax in (acc_ax, loss_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
    accs = [v for line in acc_ax.get_lines() for v in line.get_ydata()]
    if accs:
        acc_ax.set_ylim(*accuracy_limits(accs))
    handles, labels = acc_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=legend_columns(fig, labels), framealpha=0.9)
    return Plot("training", "Training curves", to_png(fig),
                caption="Solid: training split (running average over the epoch); dashed: validation split.")


def _exits_axis(ax: Any, stage: StagePoint, color: Any, prefix: str) -> None:
    m = stage.metrics
    curve = [r for r in m.get("accuracy_vs_expected_macs") or [] if isinstance(r, dict)]
    if curve:
        pts = sorted((float(r["expected_macs"]), 100 * float(r["accuracy"])) for r in curve)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=color, linewidth=1.8,
                label=f"{prefix}thresholds swept (test)")
    anytime = [r for r in m.get("anytime") or [] if isinstance(r, dict)]
    if anytime:
        ax.plot([r["macs"] for r in anytime], [100 * r["accuracy"] for r in anytime], ":", marker="o",
                color=color, alpha=0.8, markersize=6, label=f"{prefix}each exit alone (anytime)")
        for r in anytime:
            ax.annotate(f"exit {r['exit']}", (r["macs"], 100 * r["accuracy"]), xytext=(5, -12),
                        textcoords="offset points", fontsize=8, color="#333333")
    budgets = [b for b in m.get("budgets") or [] if isinstance(b, dict) and b.get("test_expected_macs")]
    if budgets:
        ax.scatter([b["test_expected_macs"] for b in budgets], [100 * b["test_accuracy"] for b in budgets],
                   marker="*", s=180, color=color, edgecolor="black", linewidth=0.6, zorder=4,
                   label=f"{prefix}calibrated budgets (staged inference)")
        for b in budgets:
            ax.annotate(f"{b['budget_fraction']:g}×", (b["test_expected_macs"], 100 * b["test_accuracy"]),
                        xytext=(6, 6), textcoords="offset points", fontsize=8.5, fontweight="bold")
    if isinstance(m.get("backbone_macs"), (int, float)):
        ax.axvline(m["backbone_macs"], color="grey", linestyle="--", linewidth=1)
        ax.annotate("plain backbone", (m["backbone_macs"], 0.98), xycoords=("data", "axes fraction"),
                    rotation=90, ha="right", va="top", fontsize=8, color="grey")


def exits_plot(stages: Sequence[StagePoint]) -> Plot | None:
    """Accuracy vs expected MACs per sample for every early-exit stage (test split)."""
    exits = [s for s in stages if s.kind == "exits" and (s.metrics.get("accuracy_vs_expected_macs")
                                                          or s.metrics.get("anytime"))]
    if not exits:
        return None
    styles = style_for([s.display for s in exits])
    fig, (ax,) = new_figure(width=7.2, height=4.8)
    for s in exits:
        _exits_axis(ax, s, styles[s.display]["color"], f"{s.display}: " if len(exits) > 1 else "")
    ax.set(xlabel="expected MACs per sample", ylabel="test accuracy (%)",
           title="Early exits: accuracy vs compute budget" + ("" if len(exits) > 1 else f" ({exits[0].display})"))
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    accs = [v for line in ax.get_lines() for v in line.get_ydata()]
    accs += [p[1] for coll in ax.collections for p in coll.get_offsets()]
    if accs:
        ax.set_ylim(*accuracy_limits(accs))
    ax.legend(loc="lower right", framealpha=0.9)
    return Plot("exits", "Early exits: accuracy vs budget", to_png(fig),
                caption="Stars: thresholds calibrated on validation to a MACs budget (× the plain backbone), "
                        "evaluated on test; line: every threshold scale; dotted: each exit used alone.")
