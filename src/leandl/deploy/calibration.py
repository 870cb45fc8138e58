"""Calibration data for post-training quantization: N batches of real training inputs.

PTQ needs activation ranges from representative inputs run in eval mode (100-1000 unlabeled
samples are typical, reference B2/B6). :func:`calibration_batches` draws them from a dataset in
a fixed order, :func:`calibration_from_loader` takes them from a user's loader;
:class:`TensorDataReader` hands them to ONNX Runtime's calibrators. Batches keep their dtype
(token ids stay integers; only floating tensors become float32) and their structure (tensor,
tuple of positional inputs, dict of keyword inputs; :mod:`leandl.deploy.io`).

Random inputs calibrate badly (and token ids drawn at random are not text), so they are never
used silently: :func:`random_calibration` makes them only when a caller asks, and warns.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["calibration_batches", "calibration_from_loader", "random_calibration", "TensorDataReader",
           "LABEL_KEYS"]

LABEL_KEYS = ("labels", "label", "target", "targets")


def _as_input(t: Any) -> Any:
    t = torch.as_tensor(t)
    return t.float() if t.is_floating_point() else t


def _stack(items: list[Any]) -> Any:
    first = items[0]
    if isinstance(first, Mapping):
        return {k: _stack([it[k] for it in items]) for k in first if k not in LABEL_KEYS}
    if isinstance(first, tuple | list):
        return tuple(_stack([it[i] for it in items]) for i in range(len(first)))
    return _as_input(torch.stack([torch.as_tensor(it) for it in items]))


def calibration_batches(dataset: Any, num_batches: int, batch_size: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """``num_batches`` input batches (no labels) drawn without replacement from ``dataset``.

    Args:
        dataset: map-style dataset whose items start with the input tensor (leandl splits), or
            whose items are dicts of tensors (``input_ids``, ``attention_mask``; label keys
            :data:`LABEL_KEYS` are dropped).
        num_batches: batches wanted (>= 1); fewer when the dataset is small.
        batch_size: samples per batch (>= 1).
        seed: seed of the sample order.

    Returns:
        A list of batches of shape ``(batch, *input_shape)``: floating inputs as float32,
        integer inputs (token ids) unchanged; dicts of such tensors for dict items.
    """
    if num_batches < 1 or batch_size < 1:
        raise ValueError(f"need num_batches >= 1 and batch_size >= 1, got {num_batches}, {batch_size}")
    n = len(dataset)
    if n == 0:
        raise ValueError("the calibration dataset is empty")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: num_batches * batch_size]
    out: list[torch.Tensor] = []
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size].tolist()
        items = [dataset[i] for i in idx]
        out.append(_stack([it if isinstance(it, Mapping) else it[0] for it in items]))
    return out


def calibration_from_loader(loader: Iterable[Any], num_batches: int, *, inputs: Any = None) -> list[Any]:
    """The first ``num_batches`` input batches of ``loader`` (a DataLoader or any iterable).

    Args:
        loader: yields batches: a tensor (the inputs), a dict (keyword inputs; label keys
            :data:`LABEL_KEYS` dropped) or a tuple/list whose first item is the inputs
            (``(x, y)``, as leandl's loaders yield).
        num_batches: batches wanted (>= 1); fewer when the loader ends first.
        inputs: optional function ``batch -> model inputs`` replacing the rule above (for a
            loader of multi-input tuples without labels, pass ``inputs=lambda b: tuple(b)``).

    Returns:
        The batches; floating tensors as float32, integer tensors (token ids, masks) unchanged.
    """
    if num_batches < 1:
        raise ValueError(f"need num_batches >= 1, got {num_batches}")
    out: list[Any] = []
    for batch in loader:
        if inputs is not None:
            x = inputs(batch)
        elif isinstance(batch, Mapping):
            x = {k: v for k, v in batch.items() if k not in LABEL_KEYS}
        elif isinstance(batch, tuple | list):
            x = batch[0]
        else:
            x = batch
        out.append(_detach(x))
        if len(out) >= num_batches:
            break
    if not out:
        raise ValueError("the calibration loader yielded no batch")
    return out


def _detach(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return _as_input(x.detach().cpu())
    if isinstance(x, Mapping):
        return {k: _detach(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return tuple(_detach(v) for v in x)
    return x


def _random_like(x: Any, g: torch.Generator) -> Any:
    if isinstance(x, torch.Tensor):
        if x.is_floating_point():
            return torch.randn(x.shape, generator=g).to(x.dtype)
        if x.dtype == torch.bool or (x.numel() and int(x.min()) >= 0 and int(x.max()) <= 1):
            return x.clone()  # masks: keep the example's
        lo, hi = (int(x.min()), int(x.max()) + 1) if x.numel() else (0, 1)
        return torch.randint(lo, hi, x.shape, generator=g, dtype=x.dtype)
    if isinstance(x, Mapping):
        return {k: _random_like(v, g) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return tuple(_random_like(v, g) for v in x)
    return x


def random_calibration(example_inputs: Any, num_batches: int = 8, seed: int = 0) -> list[Any]:
    """Random batches shaped like ``example_inputs`` (only on request; warns).

    Floating tensors are standard normal; integer tensors whose values are all 0/1 (masks) are
    copied from the example; other integer tensors (token ids) are uniform over the example's
    ``[min, max]``. Every call warns that ranges calibrated on such inputs are a guess.
    """
    warnings.warn("calibrating int8 ranges on random inputs (asked for): expect worse accuracy than with "
                  "real inputs", UserWarning, stacklevel=2)
    g = torch.Generator().manual_seed(seed)
    return [_random_like(example_inputs, g) for _ in range(max(1, num_batches))]


class TensorDataReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a list of input batches.

    Args:
        batches: tensors, tuples of positional tensors, or dicts of keyword tensors (matched to
            the graph inputs by name), batch first.
        input_names: the ONNX graph's input names, in order.
        dtypes: the graph inputs' numpy dtypes; each fed array is cast to its input's. ``None``:
            floating tensors become float32 and integer tensors (token ids) keep their dtype.
        per_sample: feed each batch one sample at a time (every input split along its first
            axis; a batch whose inputs differ in their first size is fed whole). The same samples
            reach the model, so running min/max ranges are unchanged, while the activations held
            at once shrink by the batch size (see :func:`leandl.deploy.quantize_static_onnx`).
    """

    def __init__(self, batches: Sequence[Any], input_names: Sequence[str],
                 dtypes: Sequence[Any] | None = None, *, per_sample: bool = False) -> None:
        self.batches = list(batches)
        self.input_names = list(input_names)
        self.dtypes = list(dtypes) if dtypes is not None else None
        self.per_sample = per_sample
        self._it: Iterator[dict[str, np.ndarray]] = self._feeds()

    def _feeds(self) -> Iterator[dict[str, np.ndarray]]:
        from leandl.deploy.io import feed_dict

        for batch in self.batches:
            feed = feed_dict(_detach(batch), self.input_names)
            if self.dtypes is not None:
                feed = {n: np.ascontiguousarray(a.astype(d, copy=False)) for (n, a), d in zip(feed.items(), self.dtypes)}
            sizes = {a.shape[0] if a.ndim else None for a in feed.values()}
            if not self.per_sample or len(sizes) != 1 or None in sizes:
                yield feed
                continue
            for i in range(sizes.pop()):
                yield {n: a[i:i + 1] for n, a in feed.items()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed dict, or ``None`` when the batches are used up."""
        return next(self._it, None)

    def rewind(self) -> None:
        """Start again from the first batch."""
        self._it = self._feeds()

    def __len__(self) -> int:
        return len(self.batches)
