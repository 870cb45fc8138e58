"""Checks that need the loaded data, run before any stage so a bad value never costs training.

The schema (:mod:`leandl.recipes.schema`) bounds every value on its own; here the values are
checked against the data: the measured batch sizes must fit in memory as inputs.
"""

from __future__ import annotations

import math
from typing import Any

from leandl.errors import ConfigError
from leandl.recipes.schema import Recipe

__all__ = ["preflight", "check_device", "build_model_checked", "MAX_MEASURE_INPUT_BYTES"]

# The largest input batch ``measure.batch_sizes`` may build (float32 bytes).
MAX_MEASURE_INPUT_BYTES = 4 << 30


def preflight(recipe: Recipe, data: Any) -> None:
    """Raise :class:`ConfigError` for values that cannot work with ``data``.

    Args:
        recipe: the resolved recipe.
        data: its :class:`leandl.data.DataBundle`.
    """
    shape = tuple(getattr(data, "input_shape", ()) or ())
    per_sample = 4 * math.prod(shape) if shape else 0
    m = recipe.measure
    sizes = m.batch_sizes if m.latency else [1]
    for i, b in enumerate(sizes):
        if per_sample and b * per_sample > MAX_MEASURE_INPUT_BYTES:
            raise ConfigError(
                f"batch size {b} needs {b * per_sample / 2**30:.1f} GiB of input ({'x'.join(map(str, shape))} "
                f"float32 per sample), more than the {MAX_MEASURE_INPUT_BYTES >> 30} GiB allowed for measuring",
                where=f"measure.batch_sizes[{i}]", fix="measure smaller batch sizes")


def check_device(recipe: Recipe) -> None:
    """Refuse a ``device`` this machine does not have (before any data is loaded)."""
    import torch

    name = recipe.device
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' asked for, but torch sees no CUDA GPU on this machine",
                              where="device", fix="use device: cpu (or auto)")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}' asked for, but this machine has {torch.cuda.device_count()} GPU(s)",
                              where="device", fix="use cuda:0 .. cuda:N-1, or auto")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' asked for, but torch sees no Apple GPU", where="device",
                          fix="use device: cpu (or auto)")


def build_model_checked(build: Any, recipe: Recipe) -> Any:
    """Call ``build()`` (the recipe's starting model); a non-leandl failure becomes a ConfigError.

    A model kwarg such as ``width: -1`` fails deep inside torch; this names the recipe field.
    """
    from leandl.errors import LeandlError

    try:
        return build()
    except LeandlError:
        raise
    except (ValueError, TypeError, RuntimeError, AssertionError, ZeroDivisionError) as exc:
        cfg = recipe.model
        raise ConfigError(f"model '{cfg.name or cfg.checkpoint}' cannot be built with kwargs {cfg.kwargs} "
                          f"({type(exc).__name__}: {exc})", where="model.kwargs",
                          fix="check the model's arguments (`leandl list models`)") from None
