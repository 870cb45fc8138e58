"""A tiny Vision Transformer for small images (Dosovitskiy et al., arXiv 2010.11929).

ViT-Tiny widths (dim 192, 12 blocks, 3 heads, MLP ratio 4) with a class token and learned
position embeddings; patch 4 for 32x32 inputs (64 tokens) and patch 2 below 32 px (8x8 digits:
16 tokens). Attention and MLP are written to be pruned by heads and hidden units: every size is
read from the current ``nn.Linear`` layers at run time, never cached at construction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from leandl.errors import ModelError
from leandl.models._common import Backbone, check_input_shape
from leandl.registry import MODELS

__all__ = ["Attention", "Mlp", "Block", "PatchEmbed", "ViTHead", "VisionTransformer", "vit_tiny"]


class Attention(nn.Module):
    """Multi-head self-attention with ``qkv`` (dim -> 3 * heads * head_dim) and ``proj``.

    ``num_heads`` is derived from ``qkv.out_features // (3 * head_dim)`` at every call, so slicing
    whole heads out of ``qkv`` and ``proj`` leaves a working module. Setting ``num_heads`` after
    slicing (as Torch-Pruning does) recomputes ``head_dim`` from ``qkv``.

    Args:
        dim: token width.
        num_heads: number of heads.
        head_dim: width of each head (``dim // num_heads`` when omitted).
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int | None = None) -> None:
        super().__init__()
        self.head_dim = int(head_dim or dim // num_heads)
        self.qkv = nn.Linear(dim, 3 * num_heads * self.head_dim)
        self.proj = nn.Linear(num_heads * self.head_dim, dim)

    @property
    def num_heads(self) -> int:
        """Current head count, read from ``qkv``."""
        return self.qkv.out_features // (3 * self.head_dim)

    @num_heads.setter
    def num_heads(self, value: int) -> None:
        if value < 1 or self.qkv.out_features % (3 * value):
            raise ModelError(
                f"Attention: cannot use {value} heads with qkv.out_features "
                f"{self.qkv.out_features}", fix="slice qkv to 3 * heads * head_dim outputs first",
            )
        self.head_dim = self.qkv.out_features // (3 * value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim)."""
        b, n, _ = x.shape
        heads, hd = self.num_heads, self.head_dim
        qkv = self.qkv(x).reshape(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4)  # (3, B, h, N, hd)
        q, k, v = qkv.unbind(0)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, hd)
        return self.proj(y.transpose(1, 2).reshape(b, n, heads * hd))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2; the hidden width is whatever ``fc1`` currently outputs."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim)."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim)."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> linear tokens, class token prepended, position embedding added.

    Args:
        in_channels: input channels.
        dim: token width.
        patch: patch side.
        num_patches: tokens per image (H / patch * W / patch).
    """

    def __init__(self, in_channels: int, dim: int, patch: int, num_patches: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + HW / patch^2, dim)."""
        x = self.proj(x).flatten(2).transpose(1, 2)  # (B, N, dim)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.pos_embed


class ViTHead(nn.Module):
    """Class-token pooling then ``fc``."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, num_classes)."""
        return self.fc(x[:, 0])


class VisionTransformer(Backbone):
    """``patch_embed``, ``blocks`` (Sequential), ``norm``, head; exits after each block.

    Args:
        input_shape: one sample (C, H, W), H and W divisible by ``patch``.
        num_classes: number of classes.
        patch: patch side.
        dim: token width.
        depth: number of blocks.
        num_heads: attention heads per block.
        mlp_ratio: MLP hidden width / dim.
    """

    feature_layout = "nld"
    _chain = ("patch_embed", "blocks", "norm")

    def __init__(self, input_shape: Sequence[int], num_classes: int, patch: int, dim: int,
                 depth: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        c, h, w = input_shape
        self.patch_embed = PatchEmbed(c, dim, patch, (h // patch) * (w // patch))
        self.blocks = nn.Sequential(*(Block(dim, num_heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = ViTHead(dim, num_classes)
        self.exit_points = tuple(f"blocks.{i}" for i in range(depth))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)


@MODELS.register("vit_tiny")
def vit_tiny(*, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
             patch_size: int | None = None, dim: int = 192, depth: int = 12, num_heads: int = 3,
             mlp_ratio: float = 4.0) -> VisionTransformer:
    """ViT-Tiny for small images (arXiv 2010.11929): patch 4 at 32x32, patch 2 below 32 px.

    Args:
        num_classes: number of classes.
        input_shape: one sample (C, H, W).
        patch_size: patch side; default 4 when H and W >= 32, else 2.
        dim: token width (divisible by ``num_heads``).
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / dim.
    """
    c, h, w = check_input_shape("vit_tiny", input_shape, ndim=2)
    patch = int(patch_size or (4 if min(h, w) >= 32 else 2))
    if h % patch or w % patch or dim % num_heads:
        raise ModelError(
            f"model 'vit_tiny': input {h}x{w} must be divisible by patch_size {patch} and dim "
            f"{dim} by num_heads {num_heads}",
            fix="pass patch_size dividing both sides (e.g. 1, 2 or 4) and a matching dim",
        )
    return VisionTransformer((c, h, w), num_classes, patch, dim, depth, num_heads, mlp_ratio)
