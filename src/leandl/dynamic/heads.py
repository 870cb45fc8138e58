"""Exit heads and the inline-collaboration link of multi-exit networks.

An exit head turns a backbone feature (layout ``"nchw"``, ``"ncl"``, ``"nld"`` or ``"nc"``)
into logits: pool to ``pool`` cells per spatial dimension (the class token for ``"nld"``),
flatten, then one linear layer (``kind="linear"``) or ``Linear -> ReLU -> Linear``
(``kind="mlp"``, ``hidden`` units). The MSDNet head (two strided 3x3 convs, arXiv 1703.09844)
is heavier; on small inputs a pooled MLP costs a fraction of a per cent of the network.

:class:`InlineLink` is IMTA's inline subnetwork collaboration (arXiv 1908.09294):
``feat = ReLU(BN1d(Linear(z_{k-1} -> width)))`` and exit k's logits become
``z_k = W_h h_k + W_f feat + b``, written here as the head's own output plus
``Linear(width -> C, bias=False)(feat)``; the two are the same linear map of ``[h_k; feat]``.
The added layer starts at zero, so attaching a link does not change a trained exit.
"""

from __future__ import annotations

import torch
from torch import nn

from leandl.errors import ModelError

__all__ = ["HEAD_KINDS", "LAYOUTS", "TokenPool", "build_exit_head", "InlineLink"]

HEAD_KINDS = ("linear", "mlp")
LAYOUTS = ("nchw", "ncl", "nld", "nc")


class TokenPool(nn.Module):
    """``(B, N, D) -> (B, D)``: the class token (first token), then LayerNorm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, D)."""
        return self.norm(x[:, 0])


def _pool(layout: str, channels: int, pool: int) -> tuple[nn.Module, int]:
    if layout == "nchw":
        return nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten(1)), channels * pool * pool
    if layout == "ncl":
        return nn.Sequential(nn.AdaptiveAvgPool1d(pool), nn.Flatten(1)), channels * pool
    if layout == "nld":
        return TokenPool(channels), channels
    return nn.Flatten(1), channels


def build_exit_head(kind: str, layout: str, channels: int, num_classes: int, *,
                    pool: int = 1, hidden: int = 128) -> nn.Sequential:
    """An exit head for features with ``channels`` channels in ``layout``.

    Args:
        kind: ``"linear"`` or ``"mlp"``.
        layout: ``"nchw"``, ``"ncl"``, ``"nld"`` (class token first) or ``"nc"``.
        channels: C of ``(B, C, ...)`` maps, D of ``(B, N, D)`` tokens, or features of ``(B, F)``.
        num_classes: outputs.
        pool: adaptive pooling cells per spatial dimension (maps only).
        hidden: hidden units of the ``"mlp"`` head.

    Returns:
        ``nn.Sequential(pool, classifier)`` mapping features to ``(B, num_classes)``.

    Raises:
        ModelError: unknown kind or layout, or non-positive sizes.
    """
    if kind not in HEAD_KINDS:
        raise ModelError(f"unknown exit head '{kind}'", where="attach_exits(head=...)",
                         fix=f"use one of {', '.join(HEAD_KINDS)}")
    if layout not in LAYOUTS:
        raise ModelError(f"unknown feature layout '{layout}'", where="attach_exits(layout=...)",
                         fix=f"use one of {', '.join(LAYOUTS)}")
    if pool < 1 or hidden < 1 or channels < 1:
        raise ModelError(f"exit head sizes must be positive (pool={pool}, hidden={hidden}, "
                         f"channels={channels})", where="attach_exits")
    pooling, features = _pool(layout, channels, pool)
    if kind == "linear":
        clf: nn.Module = nn.Linear(features, num_classes)
    else:
        clf = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True),
                            nn.Linear(hidden, num_classes))
    return nn.Sequential(pooling, clf)


class InlineLink(nn.Module):
    """IMTA inline subnetwork collaboration: the previous exit's logits feed the next exit.

    ``forward(z_prev) = U ReLU(BN(V z_prev))``, added to exit k's logits; ``U`` starts at zero.

    Args:
        num_classes: C, width of both logit vectors.
        width: hidden width (IMTA: the exit's feature width, 128 on CIFAR).
        detach: stop the gradient from exit k into exit k-1 (the paper's text); IMTA's code
            does not detach (the default here).
    """

    def __init__(self, num_classes: int, width: int, detach: bool = False) -> None:
        super().__init__()
        self.detach = detach
        self.embed = nn.Sequential(nn.Linear(num_classes, width), nn.BatchNorm1d(width),
                                   nn.ReLU(inplace=True))
        self.out = nn.Linear(width, num_classes, bias=False)
        nn.init.zeros_(self.out.weight)

    def forward(self, prev_logits: torch.Tensor) -> torch.Tensor:
        """(B, C) -> (B, C) additive logits."""
        z = prev_logits.detach() if self.detach else prev_logits
        return self.out(self.embed(z))
