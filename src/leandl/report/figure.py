"""Shared plotting plumbing: lazy matplotlib (Agg), one style, PNG bytes, per-label colours.

matplotlib is imported only inside these functions, so ``import leandl`` (and
``import leandl.report``) stays free of it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Plot", "pyplot", "new_figure", "to_png", "style_for", "MARKERS"]

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
    fig.savefig(buf, format="png", facecolor="white")
    plt.close(fig)
    return buf.getvalue()


def style_for(labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A distinct (colour, marker) per label, stable in label order (tab10, then tab20)."""
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    n = 10 if len(labels) <= 10 else 20
    return {lab: {"color": cmap(i % n), "marker": MARKERS[i % len(MARKERS)]} for i, lab in enumerate(labels)}
