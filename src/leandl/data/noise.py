"""Synthetic label noise: seeded injection into a training split, keeping the clean labels.

Noise types (``inject_noise``; ``n_c`` = samples of class ``c``, ``r`` = rate, ``K`` classes):

- ``symmetric``, convention ``exclude_true`` (ProSelfLC / DM / IMAE / SCE): ``round(r * n_c)``
  samples of every class get a label drawn uniformly from the *other* ``K - 1`` classes, so the
  realised noise rate is ``r``.
- ``symmetric``, convention ``include_true`` (Patrini / Co-teaching style): the selected samples
  are resampled uniformly from all ``K`` classes (the true one included), so the expected
  realised rate is ``r (K - 1) / K``.
- ``pairflip``: the selected samples of class ``y`` become ``(y + 1) mod K``.
- ``asymmetric``: the selected samples of each class ``c`` in ``mapping`` become
  ``mapping[c]``; classes outside the mapping stay clean. The default is the CIFAR-10 mapping of
  Patrini et al. 2017: truck->automobile (9->1), bird->airplane (2->0), deer->horse (4->7),
  cat<->dog (3->5, 5->3). Other data sets need their own ``mapping`` (e.g. MNIST
  ``{7: 1, 2: 7, 3: 8, 5: 6, 6: 5}``).

Selecting exactly ``round(r * n_c)`` samples per class (as SCE's code does) rather than flipping
each sample with probability ``r`` makes the realised rate exact and equal across classes. Every
draw comes from one ``torch.Generator`` seeded with ``seed``: same seed, same noisy labels.

:func:`apply_noise` turns a :class:`~leandl.data.DataBundle` into one whose train split yields
the noisy labels (val and test stay clean) and records ``noise``, ``clean_train_targets`` and
``noisy_train_targets`` on the bundle (index-aligned with the split's ``index`` item).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from leandl.data._base import DataBundle, TensorSplit
from leandl.errors import ConfigError

__all__ = ["CIFAR10_ASYMMETRIC", "NOISE_TYPES", "CONVENTIONS", "inject_noise", "NoisyLabels",
           "apply_noise", "noise_report"]

CIFAR10_ASYMMETRIC: dict[int, int] = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
"""Patrini et al. (2017) CIFAR-10 class mapping: truck->automobile, bird->airplane,
deer->horse, cat<->dog."""

NOISE_TYPES = ("symmetric", "pairflip", "asymmetric")
CONVENTIONS = ("exclude_true", "include_true")


def _check(targets: Tensor, num_classes: int, type: str, rate: float, convention: str) -> None:
    if type not in NOISE_TYPES:
        raise ConfigError(f"unknown noise type '{type}'; choose one of {', '.join(NOISE_TYPES)}",
                          "data.noise.type")
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown convention '{convention}'; choose one of {', '.join(CONVENTIONS)}",
                          "data.noise.convention")
    if not 0.0 <= float(rate) <= 1.0:
        raise ConfigError(f"rate must lie in [0, 1], got {rate}", "data.noise.rate")
    if num_classes < 2:
        raise ConfigError(f"label noise needs at least 2 classes, got {num_classes}", "data.noise")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ConfigError(f"labels must lie in [0, {num_classes - 1}], got {int(targets.min())}.."
                          f"{int(targets.max())}", "data.noise")


def _resolve_mapping(num_classes: int, mapping: dict[int, int] | None) -> dict[int, int]:
    if mapping is None:
        if num_classes != 10:
            raise ConfigError(
                f"asymmetric noise has a default mapping only for 10 classes (CIFAR-10), got {num_classes}",
                "data.noise.mapping", "give a class mapping, e.g. mapping: {7: 1, 2: 7, 3: 8, 5: 6, 6: 5}")
        return dict(CIFAR10_ASYMMETRIC)
    out = {int(k): int(v) for k, v in mapping.items()}
    for k, v in out.items():
        if not (0 <= k < num_classes and 0 <= v < num_classes):
            raise ConfigError(f"mapping entry {k}: {v} names a class outside [0, {num_classes - 1}]",
                              "data.noise.mapping")
    return out


def _select(targets: Tensor, rate: float, classes: list[int], g: torch.Generator) -> Tensor:
    """Boolean mask: exactly ``round(rate * n_c)`` random samples of each class in ``classes``."""
    mask = torch.zeros(targets.numel(), dtype=torch.bool)
    for c in classes:
        idx = torch.nonzero(targets == c).reshape(-1)
        take = int(round(idx.numel() * float(rate)))
        if take:
            mask[idx[torch.randperm(idx.numel(), generator=g)[:take]]] = True
    return mask


def inject_noise(targets: Tensor, num_classes: int, *, type: str = "symmetric", rate: float = 0.4,
                 convention: str = "exclude_true", mapping: dict[int, int] | None = None,
                 seed: int = 0) -> Tensor:
    """Noisy copy of integer labels (see the module docstring for the noise models).

    Args:
        targets: ``(N,)`` integer labels in ``[0, K)``.
        num_classes: ``K``.
        type: ``symmetric``, ``pairflip`` or ``asymmetric``.
        rate: share ``r`` of each (mapped) class that is relabelled, in ``[0, 1]``.
        convention: symmetric only: ``exclude_true`` (flip to another class; realised rate ``r``)
            or ``include_true`` (resample over all ``K``; realised rate ``r (K-1)/K``).
        mapping: asymmetric only: ``{source class: noisy class}``; default CIFAR-10's.
        seed: seed of the ``torch.Generator`` behind every draw.

    Returns:
        ``(N,)`` int64 noisy labels; ``targets`` is not modified.

    Example:
        >>> y = torch.arange(10).repeat(10)
        >>> (inject_noise(y, 10, rate=0.4, seed=0) != y).float().mean()
        tensor(0.4000)
    """
    y = torch.as_tensor(targets).to(torch.int64).reshape(-1).cpu()
    _check(y, num_classes, type, rate, convention)
    g = torch.Generator().manual_seed(int(seed))
    noisy = y.clone()
    if type == "asymmetric":
        table = _resolve_mapping(num_classes, mapping)
        mask = _select(y, rate, sorted(table), g)
        lut = torch.arange(num_classes)
        for k, v in table.items():
            lut[k] = v
        noisy[mask] = lut[y[mask]]
        return noisy
    mask = _select(y, rate, list(range(num_classes)), g)
    n = int(mask.sum())
    if type == "pairflip":
        noisy[mask] = (y[mask] + 1) % num_classes
    elif convention == "exclude_true":
        noisy[mask] = (y[mask] + torch.randint(1, num_classes, (n,), generator=g)) % num_classes
    else:
        noisy[mask] = torch.randint(0, num_classes, (n,), generator=g)
    return noisy


class NoisyLabels(Dataset):
    """A dataset yielding ``(input, noisy_targets[index], index)`` for any base dataset.

    :class:`~leandl.data.TensorSplit` splits are not wrapped by :func:`apply_noise` (a copy with
    replaced ``targets`` keeps their batched fetching); this wrapper covers the others.

    Args:
        base: a dataset of ``(input, target, index)`` triples.
        noisy_targets: ``(N,)`` labels, indexed by the sample's ``index`` item.
    """

    def __init__(self, base: Dataset, noisy_targets: Tensor) -> None:
        self.base = base
        self.targets = noisy_targets.to(torch.int64).reshape(-1)
        if len(base) != self.targets.numel():  # type: ignore[arg-type]
            raise ConfigError(f"{self.targets.numel()} noisy labels for {len(base)} samples", "data.noise")

    def __len__(self) -> int:
        return int(self.targets.numel())

    def __getattr__(self, name: str) -> Any:
        if name in ("base", "targets"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def with_epoch(self, epoch: int) -> NoisyLabels:
        """Forward the epoch to the base dataset's augmentation (if it has any)."""
        fn = getattr(self.base, "with_epoch", None)
        return self if fn is None else NoisyLabels(fn(epoch), self.targets)

    def __getitem__(self, i: Any) -> tuple[Tensor, Tensor, Tensor]:
        x, _, idx = self.base[i]
        return x, self.targets[torch.as_tensor(idx, dtype=torch.int64)], idx


def _noisy_split(train: Dataset, noisy: Tensor) -> Dataset:
    if isinstance(train, TensorSplit):
        out = copy.copy(train)  # shares inputs, transform and augmentation
        out.targets = noisy
        return out
    return NoisyLabels(train, noisy)


def noise_report(clean: Tensor, noisy: Tensor) -> dict[str, Any]:
    """Realised noise: ``noisy_count``, ``realised_rate`` and the per-class flip rates."""
    flipped = clean != noisy
    k = int(max(int(clean.max()), int(noisy.max())) + 1) if clean.numel() else 0
    per_class = [float(flipped[clean == c].float().mean()) if bool((clean == c).any()) else 0.0
                 for c in range(k)]
    return {"noisy_count": int(flipped.sum()), "realised_rate": float(flipped.float().mean()),
            "per_class_rate": per_class}


def apply_noise(bundle: DataBundle, cfg: Any) -> DataBundle:
    """A bundle whose train split yields noisy labels; val and test stay clean.

    Args:
        bundle: the clean data.
        cfg: a :class:`leandl.recipes.schema.NoiseConfig` (or any object with ``type``,
            ``rate``, ``convention``, ``mapping`` and ``seed``).

    Returns:
        A new bundle with attributes ``noise`` (``cfg``), ``clean_train_targets`` and
        ``noisy_train_targets`` (``(N,)`` int64, index-aligned with the train split) and
        ``info["noise"]`` (settings and realised rate).
    """
    clean = bundle.targets("train")
    noisy = inject_noise(clean, bundle.num_classes, type=cfg.type, rate=cfg.rate,
                         convention=cfg.convention, mapping=cfg.mapping, seed=cfg.seed)
    info = dict(bundle.info)
    settings = {"type": cfg.type, "rate": float(cfg.rate), "convention": cfg.convention,
                "mapping": cfg.mapping, "seed": int(cfg.seed)}
    report = noise_report(clean, noisy)
    info["noise"] = {**settings, "noisy_count": report["noisy_count"], "realised_rate": report["realised_rate"]}
    out = dataclasses.replace(bundle, train=_noisy_split(bundle.train, noisy), info=info)
    out.noise = cfg  # type: ignore[attr-defined]
    out.clean_train_targets = clean  # type: ignore[attr-defined]
    out.noisy_train_targets = noisy  # type: ignore[attr-defined]
    return out
