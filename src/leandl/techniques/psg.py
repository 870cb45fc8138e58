"""PSG: E2-Train's predictive sign gradient descent (Wang, Jiang, Chen, Xu, Zhao, Lin, Wang; NeurIPS 2019, arXiv 1910.13349).

What: training runs in low precision and updates with the *sign* of the gradient (signSGD),
``w <- w - lr * sign(g)``. A sign needs less than the full gradient: E2-Train predicts it with a
cheap *MSB predictor* that uses only the most significant bits of the weights and activations
(``msb_bits`` = 4 of the ``bits`` = 8) and rounds gradients to ``grad_bits`` = 16. Where the
predicted gradient is large, ``|g_msb| >= threshold`` (5e-5), its sign is taken; only the other
elements use the full low-precision gradient ``g`` (8-bit weights and activations, fp32 gradient):

    g_psg = where(|g_msb| >= threshold, g_msb, g),      update direction = sign(g_psg).

Simulation in this library (what is and is not real): quantisation is simulated in fp32.
Weights are rounded to ``bits`` (symmetric, per tensor) in place for the step and the fp32
master copy is restored before the optimizer step; the inputs of every conv/linear layer are
fake-quantised by a forward pre-hook (straight-through gradient). The MSB value of an 8-bit code
``q`` is ``q`` truncated to its top ``msb_bits`` bits, ``trunc(q / 2^(bits - msb_bits)) *
2^(bits - msb_bits)``. Both gradients are computed (two forward/backward passes per step), so
the wall clock here is *higher* than plain training: the energy saving of the paper needs
hardware that skips the full-precision backward for the predicted elements. The summary reports
the fraction of gradient elements taken from the predictor (``psg_predicted_fraction``, the
share of full-precision gradient work a PSG accelerator skips) and how often the predicted sign
agrees with the full one on the predicted and on the other elements.

When: an efficient-training technique for SGD; combine with ``minibatch_dropping`` (SMD) and
``selective_layer_update`` (SLU) for the whole E2-Train. Cost (simulated): about 2x a step.
Hyper-parameters: ``bits`` (8), ``msb_bits`` (4), ``grad_bits`` (16), ``threshold`` (5e-5),
``sign`` (True; False keeps the magnitudes of ``g_psg`` and only tests the predictor).
Interactions: signSGD steps have size ``lr`` per weight whatever the gradient's scale: use a
learning rate about 100x below the usual SGD one (e.g. 1e-3 instead of 0.1). Not with
``precision: fp16``/``bf16`` (the two low-precision schemes would stack) -- refused at ``fit_start``.
Measured (``benchmarks/issue20_new.py``, 3 seeds): on digits PSG matches 8-bit signSGD (-0.2 +- 0.4
points) with 46 % of gradient elements predicted; on MNIST-1D it loses 16 points (the predictor's
sign agrees with the full one on 61 % of the elements it decides; threshold 1e-2: -6 points):
the absolute ``threshold`` depends on the gradient scale of the task and should be tuned.
Evaluation uses the fp32 master weights. Under DDP the full gradient is averaged over ranks but
the predictor's is computed per rank (its pass bypasses the DDP wrapper).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from leandl.errors import ConfigError
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["quantize_symmetric", "msb_truncate", "psg_gradient", "PSG"]


def _scale(x: Tensor, bits: int) -> Tensor:
    return x.detach().abs().max().clamp_min(1e-12) / (2 ** (bits - 1) - 1)


def quantize_symmetric(x: Tensor, bits: int) -> Tensor:
    """``s * clamp(round(x / s))`` with ``s = max|x| / (2^(bits-1) - 1)`` (per tensor)."""
    s = _scale(x, bits)
    top = 2 ** (bits - 1) - 1
    return torch.round(x / s).clamp(-top, top) * s


def msb_truncate(x: Tensor, bits: int, msb_bits: int) -> Tensor:
    """The value of ``x``'s ``bits``-bit code truncated (toward 0) to its top ``msb_bits`` bits."""
    s = _scale(x, bits)
    top = 2 ** (bits - 1) - 1
    step = 2 ** (bits - msb_bits)
    q = torch.round(x / s).clamp(-top, top)
    return torch.trunc(q / step) * step * s


def psg_gradient(g_msb: Tensor, g_full: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """``(where(|g_msb| >= threshold, g_msb, g_full), predicted mask)``."""
    use = g_msb.abs() >= threshold
    return torch.where(use, g_msb, g_full), use


@TECHNIQUES.register("psg")
class PSG(Technique):
    """E2-Train's predictive sign gradient descent, simulated in fp32 (arXiv 1910.13349)."""

    name = "psg"
    order = 80  # after gradient-editing techniques at after_backward

    def __init__(self, bits: int = 8, msb_bits: int = 4, grad_bits: int = 16, threshold: float = 5e-5,
                 sign: bool = True) -> None:
        if not 2 <= bits <= 16:
            raise ValueError(f"bits must be in [2, 16], got {bits}")
        if not 1 <= msb_bits < bits:
            raise ValueError(f"msb_bits must be in [1, bits), got {msb_bits}")
        if not 2 <= grad_bits <= 32:
            raise ValueError(f"grad_bits must be in [2, 32], got {grad_bits}")
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        self.bits, self.msb_bits, self.grad_bits = bits, msb_bits, grad_bits
        self.threshold, self.sign = float(threshold), sign
        self._mode: str | None = None  # None (off), "full" or "msb": how layer inputs are quantised
        self._master: list[Tensor] | None = None
        self._hooks: list[Any] = []
        self.totals = {"elements": 0, "predicted": 0, "agree_pred": 0, "agree_rest": 0}

    # ------------------------------------------------------------ quantised layer inputs
    def _quantize_input(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if self._mode is None or not args or not torch.is_tensor(args[0]) or not args[0].is_floating_point():
            return None
        x = args[0]
        q = quantize_symmetric(x, self.bits) if self._mode == "full" else msb_truncate(x, self.bits, self.msb_bits)
        return (x + (q - x).detach(), *args[1:])

    def _params(self, state: State) -> list[nn.Parameter]:
        return [p for p in state.model.parameters() if p.requires_grad]

    def _quantize_weights(self, params: list[nn.Parameter], mode: str) -> None:
        with torch.no_grad():
            for p, w in zip(params, self._master, strict=True):
                p.copy_(quantize_symmetric(w, self.bits) if mode == "full" else msb_truncate(w, self.bits, self.msb_bits))

    def _restore(self, state: State) -> None:
        if self._master is None:
            return
        with torch.no_grad():
            for p, w in zip(self._params(state), self._master, strict=True):
                p.copy_(w)
        self._master, self._mode = None, None

    # ------------------------------------------------------------ events
    def fit_start(self, state: State) -> None:
        if state.precision != "fp32":
            raise ConfigError(f"psg simulates its own low-precision arithmetic; precision is {state.precision}",
                              where="techniques (psg)", fix="set precision: fp32 for a stage with psg")
        for m in state.model.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                self._hooks.append(m.register_forward_pre_hook(self._quantize_input))

    def batch_start(self, state: State) -> None:
        if state.skip_batch:
            return
        params = self._params(state)
        self._master = [p.detach().clone() for p in params]
        self._quantize_weights(params, "full")  # the trainer's pass: 8-bit weights and activations
        self._mode = "full"

    def after_backward(self, state: State) -> None:
        params = self._params(state)
        buffers = [(b, b.detach().clone()) for b in state.model.buffers()]
        self._quantize_weights(params, "msb")
        self._mode = "msb"
        with torch.enable_grad():
            out = state.model(state.inputs)
            outs = out if isinstance(out, list | tuple) else [out]
            loss = sum(state.loss_fn(o, state.targets_soft).mean() for o in outs) / len(outs)
            g_msb = torch.autograd.grad(loss, params, allow_unused=True)
        with torch.no_grad():
            for b, saved in buffers:  # the predictor pass must not update BN statistics twice
                b.copy_(saved)
        for p, gm in zip(params, g_msb, strict=True):
            if p.grad is None:
                continue
            gm = torch.zeros_like(p.grad) if gm is None else quantize_symmetric(gm, self.grad_bits)
            g, use = psg_gradient(gm, p.grad, self.threshold)
            agree = torch.sign(gm) == torch.sign(p.grad)
            self.totals["elements"] += p.grad.numel()
            self.totals["predicted"] += int(use.sum())
            self.totals["agree_pred"] += int((agree & use).sum())
            self.totals["agree_rest"] += int((agree & ~use).sum())
            p.grad.copy_(torch.sign(g) if self.sign else g)

    def before_step(self, state: State) -> None:
        self._restore(state)  # the optimizer updates the fp32 master weights

    def batch_end(self, state: State) -> None:
        self._restore(state)  # a skipped or non-finite batch never reached before_step

    def fit_end(self, state: State) -> None:
        self._restore(state)
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def state_dict(self) -> dict[str, Any]:
        return {"totals": dict(self.totals)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.totals = {k: int(v) for k, v in state["totals"].items()}

    def summary(self) -> dict[str, Any]:
        t = self.totals
        n, p = max(t["elements"], 1), t["predicted"]
        return {"psg_predicted_fraction": p / n,
                "psg_sign_agreement_predicted": t["agree_pred"] / max(p, 1),
                "psg_sign_agreement_rest": t["agree_rest"] / max(t["elements"] - p, 1)}
