"""Reusable building blocks for models (activations, layers) that are not models themselves."""

from __future__ import annotations

from leandl.models.blocks.soft_root_sign import SoftRootSign, soft_root_sign

__all__ = ["SoftRootSign", "soft_root_sign"]
