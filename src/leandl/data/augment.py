"""Standard CIFAR train augmentation in plain torch: random crop with zero padding + flip.

The recipe of He et al., "Deep Residual Learning for Image Recognition" (arXiv:1512.03385,
Sec. 4.2): pad each side by ``p = 4`` pixels, take a random ``H x W`` crop, flip horizontally
with probability 1/2. Draws are fixed per ``(seed, epoch, index)``: a ``torch.Generator``
seeded from ``(seed, epoch)`` draws one row ``(dy, dx, flip)`` per sample index, so a batch's
augmentation does not depend on batch composition, worker count or resumption point.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["random_crop_flip", "CropFlip", "epoch_seed"]


def epoch_seed(seed: int, epoch: int) -> int:
    """Mix ``(seed, epoch)`` into one generator seed (distinct pairs give distinct seeds
    for ``0 <= epoch < 1_000_003``)."""
    return (int(seed) * 1_000_003 + int(epoch)) % (2**63 - 1)


def random_crop_flip(x: torch.Tensor, draws: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop ``x`` at per-sample offsets after zero padding, then flip where asked.

    Args:
        x: ``(B, C, H, W)`` float images.
        draws: ``(B, 3)`` int64 rows ``(dy, dx, flip)`` with ``0 <= dy, dx <= 2 * padding``
            and ``flip`` in ``{0, 1}``.
        padding: pixels of zero padding on each side.

    Returns:
        ``(B, C, H, W)``: ``out[b, :, i, j] = pad(x)[b, :, dy_b + i, dx_b + j]``, mirrored in
        ``j`` where ``flip_b = 1``. ``dy = dx = padding`` with ``flip = 0`` is the identity.
    """
    b, _, h, w = x.shape
    xp = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    rows = draws[:, 0:1] + torch.arange(h)  # (B, H)
    cols = draws[:, 1:2] + torch.arange(w)  # (B, W)
    cols = torch.where(draws[:, 2:3].bool(), cols.flip(1), cols)
    batch = torch.arange(b)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class CropFlip:
    """Random crop (``padding`` each side) + horizontal flip, drawn per (seed, epoch, index)."""

    padding: int = 4

    def table(self, n: int, seed: int, epoch: int) -> torch.Tensor:
        """``(n, 3)`` draws ``(dy, dx, flip)`` for every index of an ``n``-sample split."""
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        offsets = torch.randint(0, 2 * self.padding + 1, (n, 2), generator=g)
        flips = torch.randint(0, 2, (n, 1), generator=g)
        return torch.cat([offsets, flips], dim=1)

    def __call__(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        return random_crop_flip(x, draws, self.padding)
