"""CHEX-style channel exploration: periodic prune and regrow with re-allocation across layers.

What: train under a global channel-sparsity ``S``. Start with extra channels (per group, the
L1-lowest ``S - delta_0`` fraction masked). Every ``period`` epochs until ``explore_until`` (a
fraction of the epochs; update index ``t = 1..T``):

1. regrow fraction ``delta_t = delta_0 (1 + cos(pi t / T)) / 2``;
2. cross-layer allocation: pool the BN ``|gamma|`` of all groups; the global quantile at ``S``
   gives each group's prune count ``n_l`` (keep ``k_l = size_l - n_l``) and at ``S - delta_t``
   its count after regrowing ``n'_l <= n_l``;
3. intra-layer column-subset selection: with ``X`` the group's unit weights ``(size, D)``,
   ``X = U Sigma V^T``, the leverage score of unit j is ``||U[j, :k_l]||_2`` (the row norms of
   the top-``k_l`` singular subspace); keep the ``k_l`` highest (L1 norm when ``D < size``);
4. regrow ``n_l - n'_l`` units among the others, sampled without replacement with
   probability ``softmax(||x_j - P x_j||_2)``, ``P`` the projector onto the span of the kept
   units (favours units the kept ones cannot represent), ``x_j`` the unit's most recently
   used weights; regrown units get those weights (and BN statistics) back.

Masks are re-applied after every optimizer step; after exploration the mask stays at ``S`` and
the masked units are removed physically at ``fit_end``.

Documented simplifications vs the reference code (zejiangh/Filter-GaP): the schedule counts
epochs, not iterations; groups without BatchNorm take part in the allocation through their
mean-normalised L2 unit norms; the most-recently-used weights are the producer slices saved
when a unit was last masked (consumer columns are never zeroed, so they need no restore).

When: training from scratch to a channel budget, letting the per-layer widths be found
during training. Cost: one SVD per group per update. Hyper-parameters: ``sparsity`` (S),
``regrow`` (delta_0, 0.2 in the reference code, 0.3 for ResNet-50), ``period`` (2 epochs),
``explore_until`` (0.72 of training in the ResNet-50 recipe: 180 of 250 epochs).
Paper: Hou et al., "CHEX: CHannel EXploration for CNN Model Compression", CVPR 2022,
arXiv 2203.15794.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from leandl.prune.schedules import _masks as M
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["regrow_fraction", "leverage_scores", "regrow_probabilities", "producer_rows", "PruneRegrow"]


def regrow_fraction(t: int, *, initial: float, updates: int) -> float:
    """``delta_t = delta_0 (1 + cos(pi t / T)) / 2`` for update ``t`` of ``T`` (0 after T)."""
    if updates < 1:
        raise ValueError(f"updates must be >= 1, got {updates}")
    if t >= updates:
        return 0.0
    return initial * (1.0 + math.cos(math.pi * t / updates)) / 2.0


def leverage_scores(x: Tensor, k: int) -> Tensor:
    """Leverage score of each row of ``x`` (units x features) w.r.t. its top-``k`` singular subspace.

    ``||U[j, :k]||_2`` with ``x = U Sigma V^T``; falls back to the row L1 norm when ``x`` has
    fewer features than rows (the subspace would be everything).
    """
    x = x.detach().float()
    if x.shape[1] < x.shape[0]:
        return x.abs().sum(1)
    u, _, _ = torch.linalg.svd(x, full_matrices=False)
    return u[:, :k].norm(dim=1)


def regrow_probabilities(candidates: Tensor, kept: Tensor) -> Tensor:
    """``softmax_j ||x_j - P x_j||_2`` with ``P`` the projector onto the span of the rows of ``kept``."""
    c, m = candidates.detach().float(), kept.detach().float()
    if m.numel() == 0:
        resid = c.norm(dim=1)
    else:
        proj = c @ torch.linalg.pinv(m) @ m  # rows projected onto row-space of m
        resid = (c - proj).norm(dim=1)
    return torch.softmax(resid, dim=0)


@TECHNIQUES.register("prune_regrow")
class PruneRegrow(Technique):
    """CHEX-style periodic prune (CSS leverage) and regrow with cross-layer allocation (arXiv 2203.15794)."""

    name = "prune_regrow"
    order = 40
    changes_model = True

    def __init__(self, sparsity: float = 0.5, regrow: float = 0.2, period: int = 2, explore_until: float = 0.7,
                 max_ratio: float = 0.9, ignored_layers: list[str] | None = None, remove: bool = True,
                 seed: int = 0) -> None:
        M.check_fraction("sparsity", sparsity)
        M.check_fraction("regrow", regrow, high=sparsity, high_open=False)
        M.check_fraction("explore_until", explore_until, high_open=False)
        M.check_fraction("max_ratio", max_ratio)
        if period < 1:
            raise ValueError(f"period must be >= 1 epoch, got {period}")
        self.sparsity, self.delta0, self.period, self.explore_until = sparsity, regrow, period, explore_until
        self.max_ratio, self.remove = max_ratio, remove
        self.ignored = list(ignored_layers) if ignored_layers is not None else None
        self.gen = torch.Generator().manual_seed(seed)
        self.masks: dict[str, Tensor] = {}
        self.saved: dict[str, dict[int, dict[tuple[str, str, int, int, int], Tensor]]] = {}
        self.history: list[dict[str, Any]] = []
        self._groups: list[Any] = []
        self._example: Tensor | None = None
        self._updates = 1

    def updates_planned(self, epochs: int) -> int:
        """T: the number of prune-regrow updates in a fit of ``epochs`` epochs."""
        return max(1, int(self.explore_until * epochs) // self.period)

    def fit_start(self, state: State) -> None:
        from leandl.prune.schedules._defaults import default_ignored

        self._example = M.example_batch(state)
        ignored = self.ignored if self.ignored is not None else default_ignored(state.model)
        self._groups = M.discover_groups(state.model, self._example, ignored)
        self._updates = self.updates_planned(state.max_epochs)
        if not self.masks:
            scores = M.criterion_scores(state.model, self._groups, "l1")
            start = self.sparsity - self.delta0
            self._set_masks(state, M.masks_from_scores(scores, M.prune_counts(scores, start, "layerwise", self.max_ratio)))
            self.history.append({"epoch": 0, "delta": self.delta0, "sparsity": self.current_sparsity()})

    def current_sparsity(self) -> float:
        """Fraction of units masked now."""
        total = sum(m.numel() for m in self.masks.values())
        return 1.0 - sum(int(m.sum()) for m in self.masks.values()) / total if total else 0.0

    def _allocation_scores(self, model: torch.nn.Module) -> dict[str, Tensor]:
        out = {}
        for g in self._groups:
            gamma = M.bn_gamma(model, g)
            if gamma is None:
                w = producer_rows(model, g).norm(dim=1)
                gamma = w / w.mean().clamp_min(1e-12)
            out[g.name] = gamma
        return out

    def _set_masks(self, state: State, masks: dict[str, Tensor]) -> None:
        for g in self._groups:
            old = self.masks.get(g.name)
            new = masks[g.name]
            newly = (~new & (old if old is not None else torch.ones_like(new))).nonzero().flatten().tolist()
            if newly:
                snap = M.snapshot_units(state.model, g, newly)
                store = self.saved.setdefault(g.name, {})
                for i, idx in enumerate(newly):
                    store[idx] = {key: v.narrow(key[2], i * key[4], key[4]).clone() for key, v in snap.items()}
        self.masks = masks
        M.apply_group_masks_(state.model, self._groups, self.masks)

    def epoch_end(self, state: State) -> None:
        done = state.epoch + 1
        if done % self.period or done // self.period > self._updates:
            return
        self._update(state, done // self.period, done)

    def _update(self, state: State, t: int, epoch: int) -> None:
        model = state.model
        delta = regrow_fraction(t, initial=self.delta0, updates=self._updates)
        scores = self._allocation_scores(model)
        n_down = M.prune_counts(scores, self.sparsity, "global", self.max_ratio)
        n_up = M.prune_counts(scores, self.sparsity - delta, "global", self.max_ratio)
        masks, regrown = {}, {}
        for g in self._groups:
            x = producer_rows(model, g)
            k = g.size - n_down[g.name]
            keep = torch.zeros(g.size, dtype=torch.bool)
            keep[torch.topk(leverage_scores(x, k), k).indices] = True
            n_free = max(0, min(n_down[g.name] - n_up[g.name], g.size - k))
            if n_free:
                regrown[g.name] = self._regrow(g, x, keep, n_free)
                keep[regrown[g.name]] = True
            masks[g.name] = keep
        self._set_masks(state, masks)
        for g in self._groups:
            idxs = regrown.get(g.name, [])
            for idx in idxs:
                saved = self.saved.get(g.name, {}).pop(idx, None)
                if saved is not None:
                    M.restore_units_(model, [idx], saved)
        self.history.append({"epoch": epoch, "delta": delta, "sparsity": self.current_sparsity(),
                             "regrown": sum(len(v) for v in regrown.values())})

    def _regrow(self, g: Any, x: Tensor, keep: Tensor, n: int) -> list[int]:
        cand = (~keep).nonzero().flatten()
        store = self.saved.get(g.name, {})
        rows = []
        for idx in cand.tolist():
            saved = store.get(idx)
            rows.append(_unit_row(saved, g) if saved is not None else x[idx])
        probs = regrow_probabilities(torch.stack(rows), x[keep])
        pick = torch.multinomial(probs, n, replacement=False, generator=self.gen)
        return cand[pick].tolist()

    def after_step(self, state: State) -> None:
        M.apply_group_masks_(state.model, self._groups, self.masks)

    def fit_end(self, state: State) -> None:
        M.apply_group_masks_(state.model, self._groups, self.masks)
        if self.remove and self.masks:
            state.model = M.remove_masked(state.model, self._example, self.masks)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": dict(self.masks), "history": list(self.history), "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = dict(state["masks"])
        self.history = list(state["history"])
        self.gen.set_state(state["gen"])

    def summary(self) -> dict[str, Any]:
        return {"chex_sparsity": self.current_sparsity(), "chex_updates": len(self.history) - 1,
                "chex_regrown": sum(h.get("regrown", 0) for h in self.history)}


def _rows(slices: dict[tuple[str, str, int, int, int], Tensor], n: int) -> Tensor:
    """Unit rows ``(n, D)``: the multi-dimensional producer tensors (weights) moved to dim 0 and
    flattened, concatenated in producer order (1-D tensors when there is no weight)."""
    items = sorted(slices.items())
    parts = [v.movedim(key[2], 0).reshape(n, -1) for key, v in items if v.dim() > 1]
    parts = parts or [v.movedim(key[2], 0).reshape(n, -1) for key, v in items]
    return torch.cat(parts, dim=1).float().cpu()


def producer_rows(model: torch.nn.Module, group: Any) -> Tensor:
    """The group's unit rows ``(size, D)`` from its producers' weights (CHEX's columns of X)."""
    return _rows(M.snapshot_units(model, group, range(group.size)), group.size)


def _unit_row(saved: dict[tuple[str, str, int, int, int], Tensor], g: Any) -> Tensor:
    """A saved unit's row in the layout of :func:`producer_rows`."""
    return _rows(saved, 1)[0]
