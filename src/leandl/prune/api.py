"""``leandl.prune_``: one-shot or iterative structured pruning to a ratio, MACs, params or latency.

Targets (fractions are of the ORIGINAL model and say what to KEEP):

- ``{"ratio": r}``: remove a fraction ``r`` of the units (channels/heads/MLP units).
- ``{"macs": f}``: keep ``f`` of the MACs (``macs=0.5`` keeps 50 %, i.e. halves the MACs).
- ``{"params": f}``: keep ``f`` of the parameters.
- ``{"latency_ms": b, "batch_size": 64, "threads": 2}``: a measured latency budget at that
  batch size and intra-op thread count (default: the current ``torch.get_num_threads()``);
  HFP-style lookup table, :mod:`leandl.prune.latency`; lands within a few percent of ``b``.
- ``{"latency": f, "batch_size": 64, "threads": 2}``: keep a fraction ``f`` of the unpruned
  model's measured latency (judged on the ratio of interleaved timings: steadier than ms).

Scope ``global`` ranks units of all groups together on scores divided by their group's mean
(raw magnitudes are not comparable across layers; untrained nets otherwise lose whole early
layers) and caps each group at ``max_ratio``; ``layerwise`` removes the same fraction from every
group. ``round_to=8`` rounds kept widths to multiples of 8, which is what makes a pruned model
actually faster on CPU (odd widths are slow).

Example:
    >>> report = leandl.prune_(model, torch.randn(1, 3, 32, 32), criterion="l1",
    ...                        target={"macs": 0.5}, round_to=8)
    >>> report.macs_after / report.macs_before  # about 0.5
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from leandl.errors import ConfigError, ModelError
from leandl.measure import count_macs, count_params
from leandl.prune._alloc import CostModel, allocate, keep_sets, normalised
from leandl.prune.criteria import Criterion, get_criterion
from leandl.prune._inputs import first_batch
from leandl.prune.groups import ChannelGroup, channel_groups, remove_units_

__all__ = ["PruneReport", "prune_", "score_groups", "check_target"]

_TARGETS = ("ratio", "macs", "params", "latency_ms", "latency")


@dataclass
class PruneReport:
    """What :func:`prune_` did (MACs at batch 1, counted with PyTorch's FlopCounterMode)."""

    criterion: str
    scope: str
    target: dict[str, float]
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    widths: dict[str, list[int]] = field(default_factory=dict)  # group -> [before, after]
    kept: dict[str, list[int]] = field(default_factory=dict)  # last step's kept indices
    achieved: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    kept_whole: dict[str, str] = field(default_factory=dict)  # group -> op that blocks it

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


def check_target(target: dict[str, float]) -> str:
    """The target's kind (``macs``, ``latency`` ...) after validating it; ConfigError otherwise."""
    keys = [k for k in target if k in _TARGETS]
    unknown = [k for k in target if k not in (*_TARGETS, "batch_size", "threads")]
    if len(keys) != 1 or unknown:
        raise ConfigError(f"target must have exactly one of {_TARGETS} (+ batch_size, threads for "
                          f"latency targets), got {dict(target)}",
                          where="target", fix='e.g. {"macs": 0.5} keeps 50 % of the MACs')
    key = keys[0]
    value = float(target[key])
    if key == "ratio" and not 0 <= value < 1 or key in ("macs", "params") and not 0 < value <= 1:
        raise ConfigError(f"target {key}={value} is out of range", where=f"target.{key}",
                          fix="ratio in [0, 1) (fraction removed); macs/params in (0, 1] (kept)")
    if key == "latency_ms" and value <= 0:
        raise ConfigError("latency_ms must be > 0", where="target.latency_ms")
    if key == "latency" and not 0 < value < 1:
        raise ConfigError(f"latency={value} is out of range", where="target.latency",
                          fix="a fraction of the unpruned model's measured latency, in (0, 1)")
    return key


def _check(target: dict[str, float], scope: str, max_ratio: float, steps: int) -> str:
    key = check_target(target)
    if scope not in ("global", "layerwise"):
        raise ConfigError(f"unknown scope {scope!r}", where="scope", fix="use global or layerwise")
    if not 0 < max_ratio < 1:
        raise ConfigError(f"max_ratio must be in (0, 1), got {max_ratio}", where="max_ratio")
    if steps < 1:
        raise ConfigError(f"iterative_steps must be >= 1, got {steps}", where="iterative_steps")
    return key


def score_groups(model: nn.Module, groups: Sequence[ChannelGroup], criterion: Criterion,
                 batches: Iterable[Any] | None = None) -> dict[str, torch.Tensor]:
    """Each group's importance scores (size,) from ``criterion``."""
    data = list(batches) if batches is not None else None
    return {g.name: criterion(model, g, data).detach().float().reshape(-1) for g in groups}


def _search(groups: list[ChannelGroup], scores: dict[str, torch.Tensor], cost: CostModel,
            key: str, goal: float, scope: str, max_ratio: float,
            round_to: int | None) -> dict[str, int]:
    """Bisect the prune strength t so the estimated metric lands closest to ``goal``."""
    if key == "ratio":
        return allocate(groups, scores, goal, scope, max_ratio, round_to)
    idx = 0 if key == "macs" else 1
    full = cost.estimate({})[idx]
    lo, hi, best, best_err = 0.0, 1.0, None, float("inf")
    for _ in range(40):
        t = (lo + hi) / 2
        kept = allocate(groups, scores, t, scope, max_ratio, round_to)
        frac = cost.estimate(kept)[idx] / full
        err = abs(frac - goal) + (1e-9 if frac > goal else 0.0)
        if err < best_err:
            best, best_err = kept, err
        lo, hi = (t, hi) if frac > goal else (lo, t)
    last = allocate(groups, scores, 1.0, scope, max_ratio, round_to)
    if cost.estimate(last)[idx] / full > goal:
        warnings.warn(f"target {key}={goal} is out of reach with max_ratio={max_ratio}; "
                      "pruning as far as allowed", stacklevel=3)
        return last
    return _refine(groups, dict(best or last), cost, idx, full, goal, round_to)


def _refine(groups: list[ChannelGroup], kept: dict[str, int], cost: CostModel, idx: int,
            full: float, goal: float, round_to: int | None) -> dict[str, int]:
    """Give units back, one rounding step at a time, while the estimate stays under ``goal``.

    The bisection over the prune strength can jump past the goal when a large coupled group
    (a whole residual stage) changes width in one step; this closes the gap from below.
    """
    frac = cost.estimate(kept)[idx] / full
    for _ in range(200):
        if goal - frac <= 0.002:
            break
        best, best_frac = None, frac
        for g in groups:
            step = round_to or 1
            if round_to and g.unit > 1:
                step = max(1, round_to // g.unit) if round_to % g.unit == 0 else 1
            if kept[g.name] >= g.size:
                continue
            trial = dict(kept)
            trial[g.name] = min(g.size, kept[g.name] + step)
            f = cost.estimate(trial)[idx] / full
            if best_frac < f <= goal + 0.005:
                best, best_frac = trial, f
        if best is None:
            break
        kept, frac = best, best_frac
    return kept


def prune_(model: nn.Module, example_inputs: torch.Tensor, *, criterion: str | Criterion = "l1",
           target: dict[str, float] | None = None, scope: str = "global", max_ratio: float = 0.9,
           ignored_layers: Sequence[str] | None = None, round_to: int | None = None,
           batches: Iterable[Any] | None = None, iterative_steps: int = 1,
           keep: dict[str, list[int]] | None = None,
           between_steps: Callable[[nn.Module, int], None] | None = None,
           strict: bool = False, allow_miss: bool = False) -> PruneReport:
    """Prune ``model`` in place (physically) to ``target``; returns a :class:`PruneReport`.

    Args:
        model: any network whose forward runs on ``example_inputs`` (traced concretely at the
            ATen level); its input and output shapes are kept.
        example_inputs: an input batch: a tensor, a tuple of positional inputs, or a dict of
            keyword inputs (``{"input_ids": ..., "attention_mask": ...}``); MACs are counted
            at batch 1.
        criterion: a ``CRITERIA`` name (``l1``, ``l2``, ``fpgm``, ``bn_scale``, ``taylor``,
            ``di``, ``random``) or a :class:`Criterion`.
        target: one of ``ratio`` / ``macs`` / ``params`` / ``latency_ms`` / ``latency`` (see
            module doc).
        scope: ``global`` (normalised scores ranked together) or ``layerwise``.
        max_ratio: at most this fraction of any group is removed.
        ignored_layers: module names whose output units are kept (default: none beyond the
            first layer and the classifier, which are always kept).
        round_to: round kept widths to multiples of this (8 recommended for CPU speed).
        batches: ``(inputs, targets)`` batches for data criteria (``taylor``, ``di``).
        iterative_steps: prune in this many steps towards the target, re-scoring each time
            (geometric schedule for macs/params, linear for ratio).
        keep: explicit kept indices per group name (e.g. an early-bird mask); skips scoring.
        between_steps: called as ``fn(model, step)`` after each step but the last (fine-tune).
        strict: raise when an op leandl cannot prune through touches a group; by default
            such groups keep all their units and ``report.kept_whole`` says which and why.
        allow_miss: accept a MACs/params result more than 2 % (absolute) off the target;
            by default that is an error (the model is left pruned as far as it went).

    Raises:
        ConfigError: invalid target, scope or ratios. ModelError: the model has nothing
            prunable, cannot be pruned (strict), or the target was missed by > 2 %.
    """
    target = dict(target or {"macs": 0.5})
    key = _check(target, scope, max_ratio, iterative_steps)
    x1 = first_batch(example_inputs)
    crit = get_criterion(criterion)
    data = list(batches) if batches is not None else None
    kept_whole: dict[str, str] = {}
    groups = channel_groups(model, x1, ignored_layers=ignored_layers or (), strict=strict,
                            kept_whole=kept_whole)
    if not groups and keep is None:
        why = "; ".join(f"{k}: {v}" for k, v in list(kept_whole.items())[:3])
        raise ModelError(
            f"{type(model).__name__} has no prunable channel group"
            + (f" (kept whole: {why})" if why else " (every width reaches the input or output)"),
            where=type(model).__name__,
            fix="check that the model has conv/linear layers between its input and output; "
                "ops leandl cannot prune through are named above")
    cost = CostModel(model, groups, x1)
    macs0, params0 = cost.macs.total, count_params(model).total
    widths = {g.name: [g.size, g.size] for g in groups}
    last_keep: dict[str, list[int]] = {}
    lat: dict[str, float] = {}
    if keep is not None:
        remove_units_(model, x1, keep)
        last_keep = keep
    elif key in ("latency_ms", "latency"):
        from leandl.prune.latency import prune_to_latency

        last_keep, lat = prune_to_latency(model, example_inputs, crit, target, scope, max_ratio,
                                          ignored_layers or (), round_to, data)
    else:
        for step in range(iterative_steps):
            if step > 0:
                groups = channel_groups(model, x1, ignored_layers=ignored_layers or (),
                                        strict=strict)
                cost = CostModel(model, groups, x1)
            goal = _step_goal(key, float(target[key]), step, iterative_steps,
                              cost.macs.total / macs0, count_params(model).total / params0)
            scores = normalised(score_groups(model, groups, crit, data))
            for _attempt in range(3):  # groups whose removal breaks the forward stay whole
                kept = _search(groups, scores, cost, key, goal, scope, max_ratio, round_to)
                last_keep = keep_sets(groups, scores, kept)
                broken = _breaking(model, x1, groups, last_keep)
                if not broken:
                    break
                if strict:
                    raise ModelError(f"pruning group '{broken[0][0]}' breaks the forward pass "
                                     f"({broken[0][1]})", where=broken[0][0],
                                     fix="drop strict=True to keep such groups whole")
                for name, why in broken:
                    kept_whole[name] = f"pruning it breaks the forward pass ({why})"
                names = {n for n, _ in broken}
                groups = [g for g in groups if g.name not in names]
                cost = CostModel(model, groups, x1)
            if step == iterative_steps - 1 and key in ("macs", "params") and not allow_miss:
                est = cost.estimate(kept)[0 if key == "macs" else 1] / (
                    macs0 if key == "macs" else params0)
                _check_landing(model, key, est, float(target[key]), kept_whole)
            remove_units_(model, x1, last_keep, groups=groups)
            for name, idx in last_keep.items():
                widths[name][1] = len(idx)
            if between_steps is not None and step < iterative_steps - 1:
                between_steps(model, step)
    macs1, params1 = count_macs(model, x1).total, count_params(model).total
    achieved = {"macs": macs1 / macs0, "params": params1 / params0}
    if key in ("macs", "params") and keep is None and not allow_miss:
        _check_landing(model, key, achieved[key], float(target[key]), kept_whole)
    return PruneReport(
        criterion=str(getattr(crit, "name", criterion) if isinstance(criterion, str) else
                      type(crit).__name__), scope=scope, target=target,
        params_before=params0, params_after=params1, macs_before=macs0, macs_after=macs1,
        widths=widths if keep is None and not key.startswith("latency") else {
            n: [w[0], len(last_keep.get(n, range(w[0])))] for n, w in widths.items()},
        kept=last_keep,
        achieved=achieved, latency=lat, kept_whole=kept_whole,
    )


def _breaking(model: nn.Module, x: Any, groups: list[ChannelGroup],
              keep: dict[str, list[int]]) -> list[tuple[str, str]]:
    """Groups whose removal breaks the forward pass, found by bisection on copies of ``model``.

    Code that derives a shape from another tensor's width (``C // num_heads`` with ``C`` the
    input's width, a split size kept in an attribute) couples widths the trace cannot see;
    pruning such a group gives a model that fails. Returns (group, error) pairs; empty when
    pruning everything in ``keep`` works (or the model cannot be copied to find out).
    """
    import copy

    from leandl.errors import LeandlError

    def trial(names: list[str]) -> str | None:
        try:
            clone = copy.deepcopy(model)
        except Exception:  # noqa: BLE001 - an uncopyable model is checked after surgery
            return None
        try:
            remove_units_(clone, x, {n: keep[n] for n in names}, groups=groups)
        except LeandlError as exc:
            cause = exc.__cause__ or exc
            return f"{type(cause).__name__}: {cause}"[:200]
        return None

    def find(names: list[str], err: str) -> list[tuple[str, str]]:
        if len(names) == 1:
            return [(names[0], err)]
        mid = len(names) // 2
        out = []
        for half in (names[:mid], names[mid:]):
            e = trial(half)
            if e is not None:
                out += find(half, e)
        return out or [(n, err) for n in names]  # only the combination fails: keep all

    names = [g.name for g in groups if g.name in keep]
    err = trial(names) if names else None
    return [] if err is None else find(names, err)


def _check_landing(model: nn.Module, key: str, got: float, want: float,
                   kept_whole: dict[str, str]) -> None:
    """ModelError when the kept fraction ``got`` is more than 2 % (absolute) off ``want``."""
    if abs(got - want) <= 0.02:
        return
    raise ModelError(
        f"pruning would land at {got:.3f} of the {key}, target {want} (more than 2 % off)",
        where=type(model).__name__,
        fix="raise max_ratio, lower round_to, or pass allow_miss=True to accept it"
            + (f"; groups kept whole: {', '.join(list(kept_whole)[:5])}" if kept_whole else ""))


def _step_goal(key: str, final: float, step: int, steps: int, macs_now: float,
               params_now: float) -> float:
    """This step's goal relative to the CURRENT model (geometric for macs/params).

    ``macs_now`` / ``params_now`` are the current model's fractions of the original.
    """
    if key == "ratio":
        done = 1 - final * step / steps
        return 1 - (1 - final * (step + 1) / steps) / done
    want = final ** ((step + 1) / steps)
    return min(1.0, want / (macs_now if key == "macs" else params_now))
