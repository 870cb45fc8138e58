"""Shared plotting plumbing: lazy matplotlib (Agg), one style, PNG bytes, per-label colours.

matplotlib is imported only inside these functions, so ``import leandl`` (and
``import leandl.report``) stays free of it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Plot", "pyplot", "new_figure", "to_png", "style_for", "point_styles", "place_labels", "MARKERS"]

MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "<", ">", "h", "p")

_RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
       "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
       "figure.dpi": 100, "savefig.dpi": 110}


@dataclass
class Plot:
    """One rendered figure: a file-safe ``name``, a ``title`` and its PNG bytes."""

    name: str
    title: str
    png: bytes
    caption: str = ""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend with the report's style."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(_RC)
    return plt


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 4.4) -> tuple[Any, Any]:
    """A figure with ``nrows x ncols`` axes (always a flat list), each ``width x height`` inches."""
    plt = pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                             constrained_layout=True)
    return fig, list(axes.ravel())


def to_png(fig: Any) -> bytes:
    """Render ``fig`` to PNG bytes and close it."""
    plt = pyplot()
    buf = io.BytesIO()
    # "tight" grows the canvas to whatever was drawn outside it (a long legend), so nothing is clipped
    fig.savefig(buf, format="png", facecolor="white", bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return buf.getvalue()


def style_for(labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A distinct (colour, marker) per label, stable in label order (tab10, then tab20)."""
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    n = 10 if len(labels) <= 10 else 20
    return {lab: {"color": cmap(i % n), "marker": MARKERS[i % len(MARKERS)]} for i, lab in enumerate(labels)}


def point_styles(labels: Sequence[str], runs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per point: one run -> a colour and marker per label; several -> colour per run, marker per stage.

    ``labels`` and ``runs`` are parallel (the run each labelled point belongs to).
    """
    distinct = list(dict.fromkeys(runs))
    if len(distinct) <= 1:
        return style_for(labels)
    colours = style_for(distinct)
    seen: dict[str, int] = {}
    out = {}
    for lab, run in zip(labels, runs, strict=True):
        k = seen.get(run, 0)
        seen[run] = k + 1
        out[lab] = {"color": colours[run]["color"], "marker": MARKERS[k % len(MARKERS)]}
    return out


_CANDIDATES = ((7, 5), (7, -12), (-7, 5), (-7, -12), (0, 11), (0, -19), (14, -3), (-14, -3))


def place_labels(ax: Any, points: Sequence[tuple[float, float, str]], fontsize: float = 8.5) -> None:
    """Annotate each ``(x, y, text)`` at the first nearby spot that overlaps no earlier label or point.

    Greedy in display space: text boxes are approximated as ``0.6 * fontsize`` points per
    character by ``1.5 * fontsize`` high (text plus a gap); the axes limits and scales must be final.
    """
    fig = ax.figure
    fig.draw_without_rendering()  # run the layout so data -> display coordinates are final
    px = fig.dpi / 72.0
    xy = [tuple(ax.transData.transform((x, y))) for x, y, _ in points]
    marks = [(x - 6 * px, y - 6 * px, x + 6 * px, y + 6 * px) for x, y in xy]
    taken: list[tuple[float, float, float, float]] = []
    for (x, y), (xd, yd, text) in zip(xy, points, strict=True):
        w, h = 0.6 * fontsize * len(text) * px, 1.5 * fontsize * px  # with a little air
        choice: tuple[int, tuple[int, int], tuple[float, float, float, float]] | None = None
        for dx, dy in _CANDIDATES:
            x0 = x + dx * px - (w if dx < 0 else w / 2 if dx == 0 else 0)
            box = (x0, y + dy * px, x0 + w, y + dy * px + h)
            hits = sum(_overlap(box, other) for other in taken + marks)
            if choice is None or hits < choice[0]:
                choice = (hits, (dx, dy), box)
            if hits == 0:
                break
        assert choice is not None
        taken.append(choice[2])
        dx, dy = choice[1]
        ax.annotate(text, (xd, yd), xytext=(dx, dy), textcoords="offset points", va="bottom",
                    ha="right" if dx < 0 else "center" if dx == 0 else "left",
                    fontsize=fontsize, color="#222222", zorder=4, annotation_clip=False)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
