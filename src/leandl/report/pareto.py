"""Pareto plots: test accuracy against each measured cost, every stage a labelled point.

A point ``(c_i, a_i)`` is on the Pareto front when no other point is at least as cheap and at
least as accurate with one of the two strictly better:
``not exists j: c_j <= c_i and a_j >= a_i and (c_j < c_i or a_j > a_i)``.
The front is drawn as a step line (the best accuracy reachable at a given cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leandl.report.figure import Plot, new_figure, place_labels, point_styles, to_png
from leandl.report.load import StagePoint
from leandl.report.outline import effective_latency, effective_macs
from leandl.report.tables import batch_sizes

__all__ = ["pareto_front", "pareto_plots", "PASSIVE_KINDS", "accuracy_limits", "legend_columns"]

# Stages that hand on the model they received unchanged: their point would duplicate the
# previous stage's (with fresh timing noise), so they stay in the tables but not on the plots.
PASSIVE_KINDS = frozenset({"bench", "export"})


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points (lower cost, higher accuracy), sorted by cost.

    Example:
        >>> pareto_front([1, 2, 3, 2], [0.5, 0.7, 0.6, 0.4])
        [0, 1]
    """
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accuracies[i]))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        if accuracies[i] > best:
            front.append(i)
            best = accuracies[i]
    return front


def _axis(ax: Any, stages: Sequence[StagePoint], costs: Sequence[float | None], xlabel: str,
          title: str, eng: bool = False) -> list[tuple[float, float, str]]:
    """Scatter the stages with a cost and draw the front; returns the label anchors (empty: nothing drawn).

    Labels are placed by the caller once the legend is in (the layout, hence the free space, is final).
    """
    pts = [(s, c, 100 * a) for s, c in zip(stages, costs, strict=True)
           if c is not None and (a := s.number("accuracy")) is not None]
    if not pts:
        return []
    styles = point_styles([s.display for s in stages], [s.run for s in stages])
    xs, ys = [c for _, c, _ in pts], [a for _, _, a in pts]
    for s, c, a in pts:
        st = styles[s.display]
        ax.scatter([c], [a], s=70, color=st["color"], marker=st["marker"], edgecolor="black",
                   linewidth=0.6, zorder=3, label=s.display)
    front = pareto_front(xs, ys)
    if len(front) > 1:
        fx, fy = [xs[i] for i in front], [ys[i] for i in front]
        ax.step(fx, fy, where="post", color="#d62728", linewidth=1.4, alpha=0.7, zorder=2,
                label="Pareto front")
    positive = [x for x in xs if x > 0]
    if positive and len(positive) == len(xs) and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    _pad(ax, xs, ys)
    if eng:
        from matplotlib.ticker import EngFormatter

        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    return [(c, a, s.display) for s, c, a in pts]


def accuracy_limits(ys: Sequence[float]) -> tuple[float, float]:
    """Y limits (%) around the data with room for labels, never below 0 or past 100.5 %."""
    lo, hi = min(ys), max(ys)
    span = max(hi - lo, 1.0)
    return max(lo - 0.25 * span, 0.0), min(hi + 0.25 * span, 100.5)


def _pad(ax: Any, xs: Sequence[float], ys: Sequence[float]) -> None:
    """Room around the points so labels stay inside the axes."""
    ax.set_ylim(*accuracy_limits(ys))
    if ax.get_xscale() == "log":
        ax.set_xlim(min(xs) / 1.8, max(xs) * 1.8)
    else:
        xlo, xhi = min(xs), max(xs)
        xspan = (xhi - xlo) or abs(xhi) or 1.0
        ax.set_xlim(xlo - 0.3 * xspan, xhi + 0.3 * xspan)


def _single(name: str, title: str, stages: Sequence[StagePoint], costs: list[float | None],
            xlabel: str, eng: bool = False) -> Plot | None:
    fig, (ax,) = new_figure()
    anchors = _axis(ax, stages, costs, xlabel, title, eng)
    if not anchors:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return None
    _legend(fig, ax)
    place_labels(ax, anchors)
    return Plot(name, title, to_png(fig))


def _legend(fig: Any, ax: Any) -> None:
    """One legend under the panels (stage markers and the front), out of the points' way; as many
    columns as the figure's width holds at the longest label, so it is never wider than the figure."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=legend_columns(fig, labels), framealpha=0.9)


def legend_columns(fig: Any, labels: Sequence[str], fontsize: float = 8.5) -> int:
    """Columns of a legend under ``fig`` that fit its width (about 0.6 em per character plus a marker)."""
    width_pt = fig.get_figwidth() * 72
    longest = max((len(t) for t in labels), default=1)
    per_col = 0.6 * fontsize * longest + 4 * fontsize  # text, marker and spacing
    return max(1, min(len(labels), 4, int(width_pt // per_col)))


def pareto_plots(stages: Sequence[StagePoint]) -> list[Plot]:
    """Accuracy vs MACs, vs latency (one panel per batch size), vs weights size, vs energy.

    Stages of a kind in :data:`PASSIVE_KINDS` are left out (their model is the previous stage's).
    """
    stages = [s for s in stages if s.kind not in PASSIVE_KINDS]
    plots = [
        _single("pareto-macs", "Accuracy vs MACs", stages, [effective_macs(s.kind, s.metrics) for s in stages],
                "MACs per sample (forward, batch 1; early exits: expected)", eng=True),
    ]
    sizes = batch_sizes(stages)
    if sizes:
        fig, axes = new_figure(ncols=len(sizes))
        anchors = []
        for ax, b in zip(axes, sizes, strict=True):
            threads = sorted({str(s.metrics.get("threads")) for s in stages if s.latency(b) is not None})
            anchors.append(_axis(ax, stages, [effective_latency(s.kind, s.metrics, b) for s in stages],
                           f"latency (ms per batch of {b}, median; threads {'/'.join(threads)})",
                           f"Accuracy vs latency, batch {b}"))
        if any(anchors):
            _legend(fig, next(a for a in axes if a.get_legend_handles_labels()[0]))
            for ax, pts in zip(axes, anchors, strict=True):
                if pts:
                    place_labels(ax, pts)
            plots.append(Plot("pareto-latency", "Accuracy vs latency", to_png(fig)))
        else:
            import matplotlib.pyplot as plt

            plt.close(fig)
    plots.append(_single("pareto-size", "Accuracy vs weights size", stages,
                         [None if (v := s.number("size_bytes")) is None else v / 1e3 for s in stages],
                         "weights size (kB = 1000 B; safetensors, int8 ONNX for quantize)"))
    sources = sorted({str(s.metrics.get("energy_source")) for s in stages if s.number("energy_j") is not None})
    plots.append(_single("pareto-energy", "Accuracy vs energy", stages,
                         [None if (v := s.number("energy_j")) is None else v * 1e6 for s in stages],
                         f"energy (µJ per sample; {', '.join(sources) or 'no source'})"))
    return [p for p in plots if p is not None]
