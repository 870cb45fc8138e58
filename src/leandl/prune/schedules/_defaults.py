"""Default layers the schedules leave alone: the first conv/linear and the classifier."""

from __future__ import annotations

from torch import nn

__all__ = ["default_ignored"]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def default_ignored(model: nn.Module) -> list[str]:
    """Names of the first Conv/Linear layer and of the last Linear layer (the classifier).

    Pruning the first layer's outputs saves little and hurts much; the classifier's outputs are
    the classes.
    """
    layers = [n for n, m in model.named_modules() if isinstance(m, _LAYERS)]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    out = layers[:1] + linears[-1:]
    return list(dict.fromkeys(out))
