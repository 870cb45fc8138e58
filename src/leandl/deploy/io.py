"""Model inputs and outputs of any structure, as flat named tensor lists for ONNX.

A model input given to :mod:`leandl.deploy` may be

- a tensor: ``model(x)``;
- a tuple or list: positional arguments, ``model(*xs)``; a trailing dict holds keyword
  arguments, ``model(*xs[:-1], **xs[-1])`` (``torch.onnx.export``'s own convention);
- a dict: keyword arguments, ``model(**kw)`` (``{"input_ids": ..., "attention_mask": ...}``).

Tensors may be of any dtype (float images, int64 token ids, attention masks); non-tensor values
(``use_cache=False``) are constants of the exported graph. Outputs may be a tensor, a tuple or
list, a dict, a Hugging Face ``ModelOutput`` or a dataclass, nested; :func:`flatten_outputs`
turns any of them into ``(name, tensor)`` pairs in a fixed order (``None`` and non-tensor
leaves, such as a key/value cache object, are left out), and ONNX files written by
:func:`leandl.deploy.export_onnx` have exactly those outputs, in that order, with those names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["split_inputs", "call_model", "input_tensors", "input_names", "flatten_outputs", "primary_output",
           "needs_adapter", "ExportAdapter", "feed_dict", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def split_inputs(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments of a model call on ``inputs`` (see the module notes)."""
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, tuple | list):
        if inputs and isinstance(inputs[-1], Mapping):
            return tuple(inputs[:-1]), dict(inputs[-1])
        return tuple(inputs), {}
    return (inputs,), {}


def gather_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """One inputs structure from a runner's ``(*args, **kwargs)``: keyword tensors (after any
    positional ones), a single tuple/list/dict given as is, or the positional tensors."""
    if kwargs:
        return (*args, kwargs) if args else kwargs
    if len(args) == 1 and isinstance(args[0], tuple | list | dict):
        return args[0]
    return args


def call_model(model: Any, inputs: Any) -> Any:
    """``model(*args, **kwargs)`` with the arguments :func:`split_inputs` reads from ``inputs``."""
    args, kwargs = split_inputs(inputs)
    return model(*args, **kwargs)


def input_tensors(inputs: Any) -> list[torch.Tensor]:
    """The tensors of ``inputs`` in graph-input order: positional first, then keyword."""
    args, kwargs = split_inputs(inputs)
    return [v for v in [*args, *kwargs.values()] if isinstance(v, torch.Tensor)]


def input_names(inputs: Any) -> list[str]:
    """ONNX input names: ``input`` (one positional tensor), ``input0``... (several), keyword names."""
    args, kwargs = split_inputs(inputs)
    pos = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    names = [INPUT_NAME] if len(args) == 1 and pos else [f"{INPUT_NAME}{i}" for i in pos]
    return names + [k for k, v in kwargs.items() if isinstance(v, torch.Tensor)]


def feed_dict(inputs: Any, names: list[str]) -> dict[str, Any]:
    """``{graph input name: numpy array}`` for ONNX Runtime; a dict input is matched by name.

    Args:
        inputs: model inputs in any form :func:`split_inputs` accepts.
        names: the graph's input names, in order.
    """
    import numpy as np

    if isinstance(inputs, Mapping) and set(names) <= set(inputs):
        tensors = [inputs[n] for n in names]
    else:
        tensors = input_tensors(inputs)
    if len(tensors) != len(names):
        raise ValueError(f"the ONNX model takes {len(names)} inputs ({', '.join(names)}), got {len(tensors)}")
    return {n: np.ascontiguousarray(t.detach().cpu().numpy()) for n, t in zip(names, tensors)}


def _flatten(obj: Any, prefix: str, out: list[tuple[str, torch.Tensor]]) -> None:
    if isinstance(obj, torch.Tensor):
        out.append((prefix or OUTPUT_NAME, obj))
    elif isinstance(obj, Mapping):  # dict, OrderedDict, transformers ModelOutput
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            _flatten(getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name, out)
    elif isinstance(obj, tuple | list):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}.{i}" if prefix else f"output{i}", out)
    # None, Python scalars and other objects (a key/value cache) are not graph outputs


def flatten_outputs(output: Any) -> list[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` pairs of every tensor in ``output``, depth first, in order.

    A single tensor is named ``logits``; dict keys and dataclass fields keep their names
    (``last_hidden_state``), nested ones joined by dots; tuple items are ``output0``, ``output1``...
    """
    out: list[tuple[str, torch.Tensor]] = []
    _flatten(output, "", out)
    return out


def primary_output(output: Any) -> torch.Tensor:
    """The tensor compared for top-1 agreement: the tensor itself; for a dict or dataclass its
    ``logits`` if it has them, else its first tensor; for a tuple or list its last tensor
    (leandl's multi-exit models list their final exit last)."""
    if isinstance(output, torch.Tensor):
        return output
    flat = flatten_outputs(output)
    if not flat:
        raise ValueError(f"the model output ({type(output).__name__}) holds no tensor")
    if isinstance(output, tuple | list) and not hasattr(output, "keys"):
        return flat[-1][1]
    return dict(flat).get("logits", flat[0][1])


def needs_adapter(inputs: Any, output: Any) -> bool:
    """Whether export must go through :class:`ExportAdapter`: keyword or non-tensor inputs, or
    an output that is not a tensor or a flat tuple/list of tensors."""
    args, kwargs = split_inputs(inputs)
    if kwargs or not all(isinstance(a, torch.Tensor) for a in args):
        return True
    if isinstance(output, torch.Tensor):
        return False
    return not (isinstance(output, tuple | list) and not hasattr(output, "keys")
                and all(isinstance(o, torch.Tensor) for o in output))


class ExportAdapter(nn.Module):
    """``forward(*tensors) -> tuple of tensors`` around a model with structured inputs/outputs.

    The exporters see only flat positional tensors in and a flat tuple out; the adapter puts
    them back into the model's own call (positional slots, keyword names, constants) and
    flattens its output with :func:`flatten_outputs`.

    Args:
        model: the wrapped model.
        example_inputs: inputs in any form :func:`split_inputs` accepts; their non-tensor values
            are kept as constants.
    """

    def __init__(self, model: nn.Module, example_inputs: Any) -> None:
        super().__init__()
        self.model = model
        args, kwargs = split_inputs(example_inputs)
        self._args = [None if isinstance(a, torch.Tensor) else a for a in args]
        self._arg_slots = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
        self._kwargs = {k: (None if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
        self._kw_slots = [k for k, v in kwargs.items() if isinstance(v, torch.Tensor)]

    @property
    def arg_slots(self) -> list[int]:
        """Positions of the model's positional tensor arguments, in graph-input order."""
        return list(self._arg_slots)

    @property
    def kw_slots(self) -> list[str]:
        """Names of the model's keyword tensor arguments, in graph-input order (after positional)."""
        return list(self._kw_slots)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Call the model with ``tensors`` in their slots; return its output tensors, flattened."""
        args = list(self._args)
        kwargs = dict(self._kwargs)
        it = iter(tensors)
        for i in self._arg_slots:
            args[i] = next(it)
        for k in self._kw_slots:
            kwargs[k] = next(it)
        return tuple(t for _, t in flatten_outputs(self.model(*args, **kwargs)))
