"""Mixed-precision training: autocast for the forward pass and dynamic loss scaling for fp16.

What: ``precision: bf16`` or ``fp16`` runs the forward pass and the loss under
``torch.autocast(device_type, dtype)``: matrix multiplies and convolutions compute in the low
precision, reductions and the softmax stay in fp32, and the master weights, their gradients and
the optimizer state stay fp32 (Micikevicius et al., "Mixed Precision Training", ICLR 2018,
arXiv 1710.03740). bf16 keeps fp32's exponent range, so it needs no loss scaling. fp16's range
ends at 65504 and small gradients underflow to zero, so fp16 multiplies the loss by a scale
``S`` before ``backward`` and divides the gradients by ``S`` before the step (dynamic loss
scaling, ``torch.amp.GradScaler``): when any gradient is inf or NaN the step is skipped and
``S`` halves; after ``growth_interval`` (2000) clean steps ``S`` doubles. Initial ``S = 2**16``.

When: a trainer option (``TrainConfig.precision``), not a technique; a technique may switch it at
``fit_start`` through ``state.precision`` (early-bird's low-precision search).
Cost: on GPUs with bf16/fp16 tensor cores the step is faster and activations take half the
memory; on CPUs without native bf16 kernels autocast can be slower than fp32 -- measure
(``benchmarks/amp.py``). Interactions: techniques at ``after_backward`` and ``grad_clip`` see
unscaled gradients (the scaler unscales right after ``backward``); skipped fp16 steps are counted
in ``amp_steps_skipped``; the scaler's state is part of the resume checkpoint.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["DTYPES", "AmpContext"]

DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class AmpContext:
    """Autocast and (for fp16) a gradient scaler for one fit.

    Args:
        precision: ``fp32``, ``bf16`` or ``fp16``.
        device: the training device (autocast's ``device_type`` is its type).
        init_scale / growth_interval: the fp16 loss scaler's start value and growth period.
    """

    def __init__(self, precision: str, device: torch.device, init_scale: float = 2.0**16,
                 growth_interval: int = 2000) -> None:
        if precision not in DTYPES:
            raise ValueError(f"precision must be one of {tuple(DTYPES)}, got {precision!r}")
        self.precision = precision
        self.device_type = torch.device(device).type
        self.dtype = DTYPES[precision]
        self.scaler = torch.amp.GradScaler(self.device_type, init_scale=init_scale,
                                           growth_interval=growth_interval, enabled=precision == "fp16")
        self.steps_skipped = 0

    @property
    def enabled(self) -> bool:
        """Whether autocast is on (bf16 or fp16)."""
        return self.dtype is not None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context for the forward pass and the loss (a no-op context for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """``backward`` of the (scaled) loss, then unscale the gradients in place for fp16."""
        if not self.scaler.is_enabled():
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Optimizer step; for fp16 skipped when a gradient is inf/NaN. Returns whether it stepped."""
        if not self.scaler.is_enabled():
            optimizer.step()
            return True
        before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        skipped = self.scaler.get_scale() < before  # the scale only shrinks after an overflow
        self.steps_skipped += int(skipped)
        return not skipped

    @property
    def scale(self) -> float:
        """The current loss scale (1.0 when no scaling is used)."""
        return float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state and the skipped-step count (for the resume checkpoint)."""
        return {"precision": self.precision, "scaler": self.scaler.state_dict(), "steps_skipped": self.steps_skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a checkpoint from another precision leaves the scaler fresh."""
        if state.get("precision") == self.precision and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.steps_skipped = int(state.get("steps_skipped", 0))
