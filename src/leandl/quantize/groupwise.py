"""Group-wise weight quantisation with two-stage knowledge distillation for limited data.

Paper: Yuan, Chen, Hu, Peng, "Towards Low-Bit Quantization of Deep Neural Networks with Limited
Data", ICPR 2020 (DOI 10.1109/ICPR48806.2021.9412678; no arXiv version was found).

What: (1) **Group quantisation.** Per-tensor scales lose the small channels and per-channel
scales cost one scale per output channel; the output channels of each conv/linear weight are
split into ``groups`` groups and each group gets one symmetric ``bits``-bit scale,

    s_g = max_{o in g} |W_o| / (2^(bits-1) - 1),     W_hat_o = s_g * clamp(round(W_o / s_g)).

Channels are grouped by their range (sorted by ``max |W_o|`` and cut into equal consecutive
groups, so each scale serves channels of similar range); ``grouping: contiguous`` groups output
channels in index order instead. (2) **Two-stage knowledge distillation** from the fp32 model
on a few samples: *stage 1, block-wise* -- for each top-level block ``b`` in order, the block's
quantised latent weights are trained (Adam, straight-through rounding) to minimise
``||b_q(x_q) - b_fp(x_fp)||^2`` (the full-data error is checked after every pass over the few
samples and the best weights are kept, since rounding makes the path noisy), where ``x_q`` is the output of the already-optimised quantised
blocks before it and ``x_fp`` the fp32 model's; *stage 2, joint* -- the whole quantised network
is trained on ``T^2 KL(softmax(z_fp / T) || softmax(z_q / T))`` (plus ``(1 - alpha)`` CE when
labels are trusted). Block-wise supervision fixes each block's error locally; the joint stage
fixes what the local targets miss (the paper's reason for two stages).

In leandl this is the ``groupwise_quant`` technique of a ``train`` stage on the limited data:
``fit_start`` snapshots the fp32 teacher, installs the group quantisers and runs stage 1;
the stage's training loop is stage 2; ``fit_end`` bakes the quantised weights into the layers
(the weights are then exactly on each layer's ``groups``-scale grid). Activations stay fp32
(weight-only quantisation): the paper's activation quantiser is not reproduced.

Hyper-parameters: ``bits`` (4), ``groups`` (4; 1 = per tensor, ``>= out_channels`` = per
channel), ``grouping`` (``range``), ``block_steps`` (Adam steps per block in stage 1, 200;
0 skips stage 1), ``block_lr`` (1e-3), ``temperature`` (4), ``alpha`` (1.0 = teacher only).
Stage 1 needs a chain of blocks: a leandl ``Backbone`` (its stages, then ``head``) or an
``nn.Sequential``. Cost: ``block_steps`` x blocks extra forward/backward passes of one block.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from leandl.errors import ModelError
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["channel_groups", "groupwise_quantize", "GroupQuantizer", "model_blocks", "GroupwiseQuant"]


def channel_groups(weight: Tensor, groups: int, grouping: str = "range") -> Tensor:
    """Group id ``(out_channels,)`` of every output channel (``groups`` capped at out_channels)."""
    n = weight.shape[0]
    g = max(1, min(groups, n))
    if grouping == "contiguous":
        order = torch.arange(n)
    elif grouping == "range":
        order = torch.argsort(weight.detach().reshape(n, -1).abs().amax(1).cpu(), stable=True)
    else:
        raise ValueError(f"grouping must be 'range' or 'contiguous', got {grouping!r}")
    ids = torch.empty(n, dtype=torch.long)
    ids[order] = torch.arange(n) * g // n  # equal consecutive slices of the order
    return ids.to(weight.device)


def groupwise_quantize(weight: Tensor, group_ids: Tensor, bits: int) -> Tensor:
    """``W_hat``: each group of output channels on its own symmetric ``bits``-bit grid."""
    n = weight.shape[0]
    top = 2 ** (bits - 1) - 1
    ch_max = weight.detach().reshape(n, -1).abs().amax(1)  # (n,)
    g_max = torch.zeros(int(group_ids.max()) + 1, device=weight.device, dtype=ch_max.dtype)
    g_max = g_max.scatter_reduce(0, group_ids, ch_max, reduce="amax")
    s = (g_max[group_ids].clamp_min(1e-12) / top).reshape(n, *([1] * (weight.dim() - 1)))
    return torch.round(weight / s).clamp(-top, top) * s


class GroupQuantizer(nn.Module):
    """A weight parametrisation: the group-quantised weight, straight-through gradient."""

    def __init__(self, group_ids: Tensor, bits: int) -> None:
        super().__init__()
        self.register_buffer("group_ids", group_ids)
        self.bits = bits

    def forward(self, w: Tensor) -> Tensor:
        return w + (groupwise_quantize(w, self.group_ids, self.bits) - w).detach()


def model_blocks(model: nn.Module) -> list[nn.Module]:
    """The top-level chain: a Backbone's stages then ``head``, or an ``nn.Sequential``'s children."""
    chain = getattr(model, "_chain", None)
    if chain and hasattr(model, "head"):
        return [getattr(model, n) for n in chain] + [model.head]
    if isinstance(model, nn.Sequential):
        return list(model)
    raise ModelError(f"group-wise block distillation needs a chain of blocks; {type(model).__name__} is "
                     "neither a leandl Backbone nor an nn.Sequential", where=type(model).__name__,
                     fix="set block_steps: 0 (joint distillation only) or use a leandl reference model")


def _layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


@TECHNIQUES.register("groupwise_quant")
class GroupwiseQuant(Technique):
    """Group-wise low-bit weights + block-wise then joint KD from the fp32 model on few samples (ICPR 2020)."""

    name = "groupwise_quant"
    order = -10  # the teacher must be copied before other techniques change the model

    def __init__(self, bits: int = 4, groups: int = 4, grouping: str = "range", block_steps: int = 200,
                 block_lr: float = 1e-3, temperature: float = 4.0, alpha: float = 1.0) -> None:
        if not 2 <= bits <= 8:
            raise ValueError(f"bits must be in [2, 8], got {bits}")
        if groups < 1 or block_steps < 0 or block_lr <= 0 or temperature <= 0 or not 0 <= alpha <= 1:
            raise ValueError("need groups >= 1, block_steps >= 0, block_lr > 0, temperature > 0, 0 <= alpha <= 1")
        if grouping not in ("range", "contiguous"):
            raise ValueError(f"grouping must be 'range' or 'contiguous', got {grouping!r}")
        self.bits, self.groups, self.grouping = bits, groups, grouping
        self.block_steps, self.block_lr = block_steps, block_lr
        self.temperature, self.alpha = temperature, alpha
        self.teacher: nn.Module | None = None
        self._teacher_logits: Tensor | None = None
        self.block_mse: list[tuple[float, float]] = []  # (before, after) per block

    # ------------------------------------------------------------ setup and stage 1
    def fit_start(self, state: State) -> None:
        model = state.model
        self.teacher = copy.deepcopy(model).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        layers = _layers(model)
        if not layers:
            raise ModelError("groupwise_quant found no conv or linear layer", where=type(model).__name__)
        for m in layers:
            if not parametrize.is_parametrized(m, "weight"):
                ids = channel_groups(m.weight, self.groups, self.grouping)
                parametrize.register_parametrization(m, "weight", GroupQuantizer(ids, self.bits))
        if self.block_steps:
            self._blockwise(state)
        state.loss_fn = self._loss

    def _batches(self, state: State) -> list[Tensor]:
        return [b[0].to(state.device) for b in state.train_loader]

    def _blockwise(self, state: State) -> None:
        student, teacher = model_blocks(state.model), model_blocks(self.teacher)
        batches = self._batches(state)
        was_training = state.model.training
        state.model.eval()  # BN uses its running statistics; only the weights adapt
        x_q = list(batches)
        x_fp = list(batches)
        for b_q, b_fp in zip(student, teacher, strict=True):
            with torch.no_grad():
                y_fp = [b_fp(x) for x in x_fp]
            params = [p for p in b_q.parameters() if p.requires_grad]
            before = best = self._block_mse(b_q, x_q, y_fp)
            if params:
                best_state = copy.deepcopy(b_q.state_dict())
                opt = torch.optim.Adam(params, lr=self.block_lr)
                for step in range(self.block_steps):
                    i = step % len(x_q)
                    loss = F.mse_loss(b_q(x_q[i]), y_fp[i])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if (step + 1) % len(x_q) == 0 or step + 1 == self.block_steps:
                        mse = self._block_mse(b_q, x_q, y_fp)  # rounding makes the path noisy: keep the best
                        if mse < best:
                            best, best_state = mse, copy.deepcopy(b_q.state_dict())
                b_q.load_state_dict(best_state)
            self.block_mse.append((before, best))
            with torch.no_grad():
                x_q = [b_q(x) for x in x_q]
            x_fp = y_fp
        state.model.train(was_training)

    @staticmethod
    @torch.no_grad()
    def _block_mse(block: nn.Module, xs: list[Tensor], ys: list[Tensor]) -> float:
        return sum(float(F.mse_loss(block(x), y)) for x, y in zip(xs, ys, strict=True)) / max(len(xs), 1)

    # ------------------------------------------------------------ stage 2: joint KD
    def after_forward(self, state: State) -> None:
        with torch.no_grad():
            out = self.teacher(state.inputs)
        self._teacher_logits = out[-1] if isinstance(out, list | tuple) else out

    def _loss(self, logits: Tensor, targets_soft: Tensor) -> Tensor:
        from leandl.distill.kd import kd_loss

        soft = kd_loss(logits, self._teacher_logits, self.temperature, reduction="none")
        if self.alpha >= 1.0:
            return soft
        hard = -(targets_soft * F.log_softmax(logits.float(), dim=-1)).sum(-1)
        return (1 - self.alpha) * hard + self.alpha * soft

    def fit_end(self, state: State) -> None:
        for m in _layers(state.model):
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)  # bake W_hat

    def summary(self) -> dict[str, Any]:
        return {"groupwise_bits": self.bits, "groupwise_groups": self.groups,
                "groupwise_block_mse_before": [b for b, _ in self.block_mse],
                "groupwise_block_mse_after": [a for _, a in self.block_mse]}
