"""Feature-fusion online distillation, FFL (Kim, Hyun, Chung, Kwak, ICPR 2020, arXiv 1904.09058).

What: K peer sub-networks plus a fusion module trained together. The fusion module
concatenates the peers' last feature maps (``K C`` channels) -> depthwise 3x3 conv + BN + ReLU
-> 1x1 conv to ``C`` + BN + ReLU -> global average pool -> FC: the *fused classifier* ``z_f``
(for vector features: Linear + BN + ReLU -> FC). Loss:
``sum_k CE(z_k) + CE(z_f) + w(t) T^2 [sum_k KL(z_f -> z_k) + KL(mean_k z_k -> z_f)]``: the fused
classifier teaches each peer, the peers' ensemble (mean logits) teaches the fused classifier;
teachers detached; ``w(t) = exp(-5 (1 - t/L)^2)`` ramps up over the first ``rampup`` fraction.
Mechanics in leandl: :class:`FusionCohort` returns ``[z_1, ..., z_K, z_f]`` (the trainer's CE
covers every output; accuracy reads ``z_f``); this technique adds the KL terms. Difference to
the official code: the fusion module is trained by the trainer's optimizer (the paper gives it
its own SGD with weight decay 1e-5).
When: online distillation without a teacher; deploy a peer (``peers[k]``) or the fused model.
Cost: K peer passes + the fusion module. Hyper-parameters: T (3), ``rampup`` (fraction of
training; the paper's 80 of 300 epochs ~ 0.27), ``weight`` (1).
Peers must have leandl's backbone surface (``forward_features`` / ``forward_head``).
Recipes: ``model: {name: "leandl.distill.fusion:build_fusion_cohort", kwargs: {model: mnist1d_cnn,
k: 2}, trust: true}`` (or the same as a distill stage's ``student`` with ``loss: fusion``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from leandl.distill._common import as_list, sigmoid_rampup, tempered_kl
from leandl.errors import ModelError
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["build_fusion_cohort", "fusion_loss", "FusionModule", "FusionCohort", "FusionLearning"]


@LOSSES.register("fusion")
def fusion_loss(peer_logits: Sequence[Tensor], fused_logits: Tensor, temperature: float = 3.0) -> Tensor:
    """``sum_k T^2 KL(z_f || z_k) + T^2 KL(mean_k z_k || z_f)`` (batch means, teachers detached)."""
    peers = list(peer_logits)
    total = sum(tempered_kl(z, fused_logits.detach(), temperature).mean() for z in peers)
    ensemble = torch.stack([z.detach() for z in peers]).mean(dim=0)
    return total + tempered_kl(fused_logits, ensemble, temperature).mean()


class FusionModule(nn.Module):
    """Fuse K feature maps ``(B, C_k, *S)`` (or vectors) into class logits.

    Args:
        channels: channels of each peer's feature map (summed for the concatenation).
        out_channels: channels after the 1x1 convolution.
        num_classes: logits produced.
        dims: spatial dimensions of the maps: 0 (vectors), 1 or 2.
    """

    def __init__(self, channels: int, out_channels: int, num_classes: int, dims: int) -> None:
        super().__init__()
        if dims == 0:
            self.body = nn.Sequential(nn.Linear(channels, out_channels), nn.BatchNorm1d(out_channels),
                                      nn.ReLU(inplace=True))
        else:
            conv, bn, pool = ((nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d) if dims == 1
                              else (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d))
            self.body = nn.Sequential(
                conv(channels, channels, 3, padding=1, groups=channels, bias=False), bn(channels), nn.ReLU(inplace=True),
                conv(channels, out_channels, 1, bias=False), bn(out_channels), nn.ReLU(inplace=True),
                pool(1), nn.Flatten(1))
        self.fc = nn.Linear(out_channels, num_classes)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Concatenate along channels, fuse, classify."""
        return self.fc(self.body(torch.cat(list(feats), dim=1)))


class FusionCohort(nn.Module):
    """Peers + fusion module; ``forward`` returns ``[z_1, ..., z_K, z_fused]``.

    Args:
        peers: K >= 2 models with ``forward_features`` / ``forward_head`` (leandl backbones).
        num_classes: classes of the fused classifier.
        input_shape: one sample's shape (to size the fusion module).
    """

    def __init__(self, peers: Sequence[nn.Module], num_classes: int, input_shape: Sequence[int]) -> None:
        super().__init__()
        if len(peers) < 2:
            raise ModelError(f"FFL needs at least two peers, got {len(peers)}", where="FusionCohort")
        for p in peers:
            if not (hasattr(p, "forward_features") and hasattr(p, "forward_head")):
                raise ModelError(f"peer {type(p).__name__} has no forward_features/forward_head",
                                 where="FusionCohort", fix="use leandl models (they share the backbone surface)")
        self.peers = nn.ModuleList(peers)
        with torch.no_grad():
            was = [p.training for p in peers]
            for p in peers:
                p.eval()
            feats = [p.forward_features(torch.zeros(2, *input_shape)) for p in peers]
            for p, w in zip(peers, was, strict=True):
                p.train(w)
        shapes = {tuple(f.shape[2:]) for f in feats}
        if len(shapes) != 1 or len({f.dim() for f in feats}) != 1:
            raise ModelError(f"peer feature maps differ in shape: {[tuple(f.shape) for f in feats]}",
                             where="FusionCohort", fix="use peers whose last feature maps have the same size")
        dims = feats[0].dim() - 2
        self.fusion = FusionModule(sum(f.shape[1] for f in feats), feats[0].shape[1], num_classes, max(dims, 0))

    def forward(self, x: Tensor) -> list[Tensor]:
        """Peer logits then the fused logits."""
        feats = [p.forward_features(x) for p in self.peers]
        logits = [p.forward_head(f) for p, f in zip(self.peers, feats, strict=True)]
        return logits + [self.fusion(feats)]


def build_fusion_cohort(*, model: str, k: int = 2, num_classes: int = 10, input_shape: Sequence[int] = (1, 40),
                        model_kwargs: dict[str, Any] | None = None) -> FusionCohort:
    """K peers of registry model ``model`` plus the fusion module (a checkpointable factory).

    Use ``leandl.create_model("leandl.distill.fusion:build_fusion_cohort", model=..., k=...)``
    so the cohort carries a build spec (its checkpoint loads with ``trust=True``: import path).
    Each peer draws its initial weights from the global RNG in turn, so peers start different.
    """
    from leandl.models import create_model

    if ":" in model:
        raise ModelError(f"peer model '{model}' must be a registry name", where="build_fusion_cohort.model",
                         fix="name one from `leandl list models` (e.g. mnist1d_cnn, resnet20)")
    if k < 2:
        raise ModelError(f"FFL needs k >= 2 peers, got {k}", where="build_fusion_cohort.k")
    peers = [create_model(model, num_classes=num_classes, input_shape=list(input_shape), **(model_kwargs or {}))
             for _ in range(k)]
    return FusionCohort(peers, num_classes, tuple(input_shape))


@TECHNIQUES.register("fusion")
class FusionLearning(Technique):
    """FFL online distillation: fused classifier <-> peers (arXiv 1904.09058)."""

    name = "fusion"

    def __init__(self, temperature: float = 3.0, rampup: float = 0.27, weight: float = 1.0) -> None:
        if temperature <= 0 or weight < 0 or not 0.0 <= rampup <= 1.0:
            raise ValueError("need temperature > 0, weight >= 0 and rampup in [0, 1]")
        self.temperature, self.rampup, self.weight = float(temperature), float(rampup), float(weight)

    def after_loss(self, state: State) -> None:
        outs = as_list(state.outputs, self.name)
        if len(outs) < 3:
            raise ModelError(f"fusion needs at least two peers and the fused output, got {len(outs)} outputs",
                             where="fusion", fix="use leandl.distill.FusionCohort")
        w = self.weight * sigmoid_rampup(state.progress, self.rampup)
        state.add_loss_term("fusion", w * fusion_loss(outs[:-1], outs[-1], self.temperature))
