"""``leandl profile``: measure a model's parameters, MACs, size, latency, memory and energy.

MODEL is a registry name (``resnet56``) or a checkpoint directory (one holding
``leandl.json``). ``--json`` prints only JSON (keys ``params``, ``macs``, ``flops``,
``size_bytes``, ``latency_ms``, ``energy_j``, ``energy_source`` and more, units in ``units``);
otherwise a table with units, batch sizes and thread counts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from leandl.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

    from leandl.measure import Profile

__all__ = ["register", "parse_int_list", "profile_command"]

_SHAPE_EXAMPLE = "--input-shape 1,3,32,32"
_MAX_INPUT_BYTES = 4 << 30


def parse_int_list(text: str, option: str, example: str, min_len: int = 1) -> list[int]:
    """Parse ``"1,3,32,32"`` into positive integers, or raise a :class:`UsageError` naming
    ``option`` and showing ``example``."""
    sep = "," if "," in text or "x" not in text else "x"  # 1,3,32,32 or 1x3x32x32
    parts = [p.strip() for p in text.split(sep)]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) < min_len or any(v < 1 for v in values):
        need = f"at least {min_len} " if min_len > 1 else ""
        raise UsageError(
            f"cannot read '{text}': expected {need}comma-separated positive integers",
            where=option,
            fix=f"For example {example}",
        )
    return values


def _build_model(
    model: str, shape: list[int], num_classes: Optional[int], trust: bool
) -> nn.Module:
    path = Path(model)
    if path.is_dir():
        if not (path / "leandl.json").is_file():
            raise UsageError(
                f"directory '{model}' is not a leandl checkpoint (no leandl.json)",
                where="MODEL",
                fix="Give a model name (see `leandl list models`) or a checkpoint directory",
            )
        from leandl.checkpoint import load

        return load(path, trust=trust)
    from leandl.models import create_model

    kwargs: dict[str, object] = {"input_shape": tuple(shape[1:])}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return create_model(model, **kwargs)


def profile_command(
    model: str = typer.Argument(..., help="Registry model name or checkpoint directory."),
    input_shape: str = typer.Option(
        ..., "--input-shape", help="Input shape, batch first: 1,3,32,32."
    ),
    batch_sizes: str = typer.Option("1", "--batch-sizes", help="Batch sizes to time: 1,64."),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="Torch intra-op threads (default: current setting)."
    ),
    num_classes: Optional[int] = typer.Option(
        None, "--num-classes", help="Number of classes (registry models)."
    ),
    warmup: int = typer.Option(5, "--warmup", help="Untimed calls per batch size."),
    repeats: int = typer.Option(20, "--repeats", help="Timed calls per batch size."),
    as_json: bool = typer.Option(False, "--json", help="Print only JSON."),
    per_layer: bool = typer.Option(
        False, "--per-layer", help="Also list MACs per module (JSON always has them)."
    ),
    trust: bool = typer.Option(
        False, "--trust", help="Allow a checkpoint whose spec names code outside leandl."
    ),
) -> None:
    """Measure params, MACs, size, latency, peak memory and energy of MODEL."""
    from leandl.train.signals import interrupted_error, stop_immediately

    try:
        with stop_immediately():
            _profile(model, input_shape, batch_sizes, threads, num_classes, warmup, repeats, as_json, per_layer,
                     trust)
    except KeyboardInterrupt as exc:
        raise interrupted_error(exc, "leandl profile", "nothing was written; run it again") from None


def _profile(model: str, input_shape: str, batch_sizes: str, threads: Optional[int], num_classes: Optional[int],
             warmup: int, repeats: int, as_json: bool, per_layer: bool, trust: bool) -> None:
    import torch

    from leandl.measure import profile

    shape = parse_int_list(input_shape, "--input-shape", _SHAPE_EXAMPLE, min_len=2)
    sizes = parse_int_list(batch_sizes, "--batch-sizes", "--batch-sizes 1,64")
    if threads is not None and threads < 1:
        raise UsageError(
            f"threads must be >= 1, got {threads}", where="--threads", fix="For example --threads 2"
        )
    if threads is not None and threads > 1024:
        raise UsageError(f"threads must be <= 1024, got {threads}", where="--threads", fix="For example --threads 2")
    if repeats < 1 or warmup < 0 or repeats > 100_000 or warmup > 10_000:
        raise UsageError("need 1 <= --repeats <= 100000 and 0 <= --warmup <= 10000", where="--repeats/--warmup")
    if max(sizes) > 1 << 16 or len(sizes) > 32:
        raise UsageError(f"at most 32 batch sizes of at most {1 << 16}, got {batch_sizes}", where="--batch-sizes")
    need = 4 * math.prod(shape[1:]) * max(max(sizes), shape[0])
    if need > _MAX_INPUT_BYTES:
        raise UsageError(f"the largest input batch needs {need / 2**30:.1f} GiB (float32), more than "
                         f"{_MAX_INPUT_BYTES >> 30} GiB", where="--input-shape/--batch-sizes",
                         fix="profile a smaller input or batch size")
    if num_classes is not None and not 1 <= num_classes <= 1 << 20:
        raise UsageError(f"num-classes must be in [1, {1 << 20}], got {num_classes}", where="--num-classes")
    net = _build_model(model, shape, num_classes, trust)
    example = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    result = profile(
        net, example, batch_sizes=sizes, threads=threads, warmup=warmup, repeats=repeats
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print_tables(model, result, per_layer)


def _print_tables(name: str, result: Profile, per_layer: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{name}, input {'x'.join(map(str, result.input_shape))}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in result.summary_rows():
        table.add_row(key, value)
    console.print(table)
    if per_layer and result.macs_per_module:
        layers = Table(title="MACs per module (batch 1)")
        layers.add_column("module")
        layers.add_column("MACs", justify="right")
        layers.add_column("share", justify="right")
        for mod, macs in result.macs_per_module.items():
            share = 100 * macs / max(result.macs, 1)
            layers.add_row(mod or "(root)", f"{macs / 1e6:.3f} M", f"{share:.1f} %")
        console.print(layers)


def register(app: typer.Typer) -> None:
    """Add the ``profile`` command to ``app``."""
    app.command("profile")(profile_command)
