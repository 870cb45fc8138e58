"""``leandl models [PATTERN]``: the model zoo as a table of names, descriptions, params and MACs.

Params and MACs are counted at each model's default input shape (or ``--input-shape``), batch 1,
with PyTorch's ``FlopCounterMode`` (MACs = FLOPs / 2; conv, linear and attention matmuls).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import typer

__all__ = ["register", "count_params_macs", "parse_shape"]


def count_params_macs(name: str, input_shape: Sequence[int]) -> tuple[int, int]:
    """Build ``name`` at ``input_shape`` and return (parameters, MACs of one forward at batch 1)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from leandl.models import create_model

    model = create_model(name, input_shape=tuple(input_shape)).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"3,32,32"`` or ``"3x32x32"`` into a shape tuple (UsageError when malformed)."""
    from leandl.errors import UsageError

    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts if p.strip())
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise UsageError(f"--input-shape '{text}' is not a shape", fix="write it like 3,32,32 or 1,40")
    return shape


def _fmt(value: int) -> str:
    return f"{value / 1e6:.3f} M" if value >= 1e5 else f"{value / 1e3:.1f} K"


def models_cmd(
    pattern: Optional[str] = typer.Argument(None, help="fnmatch pattern, e.g. 'resnet*'"),
    input_shape: Optional[str] = typer.Option(
        None, "--input-shape", help="count at this sample shape (e.g. 1,8,8) instead of the defaults"
    ),
) -> None:
    """List models with their one-line description, parameters and MACs (batch 1)."""
    from rich.console import Console
    from rich.table import Table

    from leandl.errors import LeandlError, UsageError
    from leandl.models import default_input_shape, list_models
    from leandl.registry import MODELS

    names = list_models(pattern)
    if not names:
        raise UsageError(f"no model matches '{pattern}'", fix="run `leandl models` to see every name")
    shape = parse_shape(input_shape) if input_shape else None
    table = Table(title="models (MACs: FlopCounterMode, batch 1)")
    for col in ("name", "description", "input shape", "params", "MACs"):
        table.add_column(col, justify="right" if col in ("params", "MACs") else "left")
    for name in names:
        at = shape or default_input_shape(name)
        try:
            params, macs = count_params_macs(name, at)
            counts = (_fmt(params), _fmt(macs))
        except LeandlError:
            counts = ("n/a", "n/a")  # the model does not run at this shape (e.g. 2-D at (1, 40))
        table.add_row(name, MODELS.describe(name), "x".join(map(str, at)), *counts)
    Console(width=160).print(table)


def register(app: typer.Typer) -> None:
    """Add the ``models`` command to ``app``."""
    app.command("models")(models_cmd)
