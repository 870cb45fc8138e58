"""Parameter counts: total, trainable and non-zero.

Definitions (all in number of scalar elements, not bytes):

- ``total``: elements of every parameter of the model, each shared parameter counted once.
- ``trainable``: elements of parameters with ``requires_grad=True``.
- ``nonzero``: elements that are not exactly zero (so unstructured sparsity shows here, while
  ``total`` stays the dense count).

Buffers (BatchNorm running statistics, masks) are not parameters and are not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

__all__ = ["ParamCount", "count_params"]


@dataclass(frozen=True)
class ParamCount:
    """Parameter element counts of a model (units: elements)."""

    total: int
    trainable: int
    nonzero: int

    def to_dict(self) -> dict[str, int]:
        """The counts as a plain dict."""
        return asdict(self)


def count_params(model: nn.Module) -> ParamCount:
    """Count the parameter elements of ``model``.

    Args:
        model: any module; parameters shared between submodules are counted once.

    Returns:
        ``ParamCount(total, trainable, nonzero)``, each a number of scalar elements.

    Example:
        >>> count_params(nn.Linear(10, 5)).total   # 10*5 weights + 5 biases
        55
    """
    total = trainable = nonzero = 0
    for param in model.parameters():  # parameters() already de-duplicates shared tensors
        n = param.numel()
        total += n
        if param.requires_grad:
            trainable += n
        nonzero += int((param.detach() != 0).sum().item())
    return ParamCount(total=total, trainable=trainable, nonzero=nonzero)
