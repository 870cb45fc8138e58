"""Calibration data for post-training quantization: N batches of real training inputs.

PTQ needs activation ranges from representative inputs run in eval mode (100-1000 unlabeled
samples are typical, reference B2/B6). :func:`calibration_batches` draws them from a dataset in
a fixed order; :class:`TensorDataReader` hands them to ONNX Runtime's calibrators.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["calibration_batches", "TensorDataReader"]


def calibration_batches(dataset: Any, num_batches: int, batch_size: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """``num_batches`` input batches (no labels) drawn without replacement from ``dataset``.

    Args:
        dataset: map-style dataset whose items start with the input tensor (leandl splits).
        num_batches: batches wanted (>= 1); fewer when the dataset is small.
        batch_size: samples per batch (>= 1).
        seed: seed of the sample order.

    Returns:
        A list of float32 tensors of shape ``(batch, *input_shape)``.
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
        out.append(torch.stack([torch.as_tensor(dataset[i][0]) for i in idx]).float())
    return out


class TensorDataReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a list of input batches.

    Args:
        batches: tensors (or tuples of tensors for multi-input models), batch first.
        input_names: the ONNX graph's input names, in order.
    """

    def __init__(self, batches: Sequence[Any], input_names: Sequence[str]) -> None:
        self.batches = list(batches)
        self.input_names = list(input_names)
        self._it: Iterator[Any] = iter(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed dict, or ``None`` when the batches are used up."""
        batch = next(self._it, None)
        if batch is None:
            return None
        items = batch if isinstance(batch, tuple | list) else (batch,)
        return {n: np.ascontiguousarray(t.detach().cpu().float().numpy()) for n, t in zip(self.input_names, items)}

    def rewind(self) -> None:
        """Start again from the first batch."""
        self._it = iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
