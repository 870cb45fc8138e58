"""Example inputs of any structure (a tensor, a tuple/list of positional inputs, a dict of
keyword inputs): calling a model with them, slicing their batch, recording their shapes and
dtypes as JSON and rebuilding stand-ins from that record (used by the pruning trace and reload).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from leandl.errors import ModelError

__all__ = ["call", "output_tensors", "batch2", "first_batch", "input_spec", "inputs_from_spec"]


def call(model: nn.Module, inputs: Any) -> Any:
    """``model(inputs)``: a tensor, a tuple/list of positional inputs, or a dict of kwargs."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def output_tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in output_tensors(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in output_tensors(v)]
    if hasattr(out, "__dataclass_fields__"):
        return [t for k in out.__dataclass_fields__ for t in output_tensors(getattr(out, k))]
    return []


def batch2(inputs: Any) -> Any:
    """The inputs with their batch dim repeated to 2 (train-mode norms need 2 samples)."""
    if isinstance(inputs, torch.Tensor):
        return torch.cat([inputs, inputs]) if inputs.dim() >= 1 and inputs.shape[0] == 1 else inputs
    if isinstance(inputs, dict):
        return {k: batch2(v) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(batch2(v) for v in inputs)
    return inputs


def first_batch(inputs: Any, n: int = 1) -> Any:
    """The first ``n`` samples of every tensor in ``inputs`` (tensor, tuple or dict)."""
    if isinstance(inputs, torch.Tensor):
        return inputs[:n] if inputs.dim() >= 1 else inputs
    if isinstance(inputs, dict):
        return {k: first_batch(v, n) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(first_batch(v, n) for v in inputs)
    return inputs


def input_spec(inputs: Any) -> Any:
    """A JSON description (shapes, dtypes) of batch-1 ``inputs``, for :func:`inputs_from_spec`."""
    if isinstance(inputs, torch.Tensor):
        return {"shape": [1, *inputs.shape[1:]], "dtype": str(inputs.dtype).replace("torch.", "")}
    if isinstance(inputs, dict):
        return {"dict": {k: input_spec(v) for k, v in inputs.items()}}
    if isinstance(inputs, (tuple, list)):
        return {"tuple": [input_spec(v) for v in inputs]}
    if inputs is None or isinstance(inputs, (bool, int, float, str)):
        return {"value": inputs}
    raise ModelError(f"cannot record an example input of type {type(inputs).__name__}",
                     fix="pass tensors, tuples or dicts of tensors as example inputs")


def inputs_from_spec(spec: Any) -> Any:
    """Example inputs rebuilt from :func:`input_spec`: zeros (floats) or ones (integers)."""
    if "shape" in spec:
        dtype = getattr(torch, str(spec.get("dtype", "float32")))
        if dtype.is_floating_point or dtype.is_complex:
            return torch.zeros(spec["shape"], dtype=dtype)
        return torch.ones(spec["shape"], dtype=dtype)
    if "dict" in spec:
        return {k: inputs_from_spec(v) for k, v in spec["dict"].items()}
    if "tuple" in spec:
        return tuple(inputs_from_spec(v) for v in spec["tuple"])
    return spec.get("value")
