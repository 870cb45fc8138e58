"""Shared data types and helpers: :class:`DataBundle`, the in-memory :class:`TensorSplit`,
seeded stratified splits, option checks and the missing-files message.

Every split yields ``(input, target, index)``: ``input`` a float32 tensor of one sample's
shape, ``target`` an int64 0-d tensor, ``index`` the int64 0-d position of the sample in its
split (what per-sample techniques such as teacher-logit caching key on).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from leandl.errors import ConfigError, DataError, closest

__all__ = [
    "DataBundle",
    "TensorSplit",
    "Standardize",
    "stratified_split",
    "check_options",
    "check_fraction",
    "default_root",
    "missing_files_error",
    "candidate_dirs",
    "SPLITS",
]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Standardize:
    """Per-batch input transform ``x -> (x * scale - mean) / std`` (float32 out).

    ``mean`` and ``std`` broadcast against one sample (e.g. shape ``(C, 1, 1)``); raw uint8
    images are kept in memory and converted batch by batch, 4x smaller than float32 storage.
    """

    scale: float
    mean: torch.Tensor
    std: torch.Tensor

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Raw values to ``[0, 1]`` floats (``x * scale``)."""
        return x.to(torch.float32) * self.scale

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` on unit-scaled floats."""
        return (x - self.mean) / self.std

    @staticmethod
    def fit(raw: torch.Tensor, scale: float, channel_dim: int | None = 1) -> Standardize:
        """Statistics of ``raw * scale``: per channel (dim ``channel_dim``) or global (``None``).

        uint8 inputs are summarised through a 256-bin histogram per channel (exact, and no
        float copy of the whole split); other dtypes through float64 moments.
        """
        chans = [raw] if channel_dim is None else list(raw.unbind(channel_dim))
        means, stds = [], []
        for ch in chans:
            if ch.dtype == torch.uint8:
                counts = torch.bincount(ch.reshape(-1), minlength=256).to(torch.float64)
                values = torch.arange(256, dtype=torch.float64) * scale
                n = counts.sum()
                mean = (counts * values).sum() / n
                var = (counts * (values - mean) ** 2).sum() / (n - 1).clamp_min(1)
            else:
                x = ch.to(torch.float64) * scale
                mean, var = x.mean(), x.var()
            means.append(float(mean))
            stds.append(max(float(var) ** 0.5, 1e-8))
        if channel_dim is None:
            return Standardize(scale, torch.tensor(means[0]), torch.tensor(stds[0]))
        view = [-1] + [1] * (raw.dim() - 2)
        return Standardize(scale, torch.tensor(means).view(view), torch.tensor(stds).view(view))


class TensorSplit(Dataset):
    """One in-memory split; fetches whole batches by index tensor (no per-sample Python).

    Args:
        inputs: ``(N, *shape)`` raw inputs (uint8 or float).
        targets: ``(N,)`` integer labels.
        transform: optional :class:`Standardize` applied per batch.
        augment: optional callable ``(x_unit, index, table) -> x_unit`` applied before
            normalisation, with ``table`` from ``augment.table(n, seed, epoch)``.
        seed: seed of the augmentation draws.

    ``split[i]`` with an int returns one ``(input, target, index)`` sample; with a list or
    1-D tensor of indices it returns the batched triple ``((B, *shape), (B,), (B,))``.
    """

    batchable = True

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        transform: Standardize | None = None,
        augment: Any | None = None,
        seed: int = 0,
    ) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise DataError(f"{inputs.shape[0]} inputs but {targets.shape[0]} labels", "split")
        self.inputs = inputs
        self.targets = targets.to(torch.int64).reshape(-1)
        self.transform = transform
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self._table: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input, without the batch dimension."""
        return tuple(int(s) for s in self.inputs.shape[1:])

    def with_epoch(self, epoch: int) -> TensorSplit:
        """A view whose augmentation draws are those of ``(seed, epoch)`` (self if none)."""
        if self.augment is None:
            return self
        view = TensorSplit.__new__(TensorSplit)
        view.__dict__.update(self.__dict__)
        view.epoch = int(epoch)
        view._table = self.augment.table(len(self), self.seed, int(epoch))
        return view

    def fetch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched ``(inputs, targets, index)`` for a 1-D int64 index tensor."""
        x = self.inputs.index_select(0, index)  # faster than x[index] on CPU
        if self.transform is not None:
            x = self.transform.to_unit(x)
        elif x.dtype != torch.float32:
            x = x.to(torch.float32)
        if self.augment is not None:
            if self._table is None:
                self._table = self.augment.table(len(self), self.seed, self.epoch)
            x = self.augment(x, self._table[index])
        if self.transform is not None:
            x = self.transform.normalize(x)
        return x, self.targets.index_select(0, index), index

    def __getitem__(self, i: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(i, int) or (isinstance(i, torch.Tensor) and i.dim() == 0):
            n = len(self)
            k = int(i)
            if not -n <= k < n:
                raise IndexError(f"index {k} out of range for a split of {n} samples")
            x, y, idx = self.fetch(torch.tensor([k % n], dtype=torch.int64))
            return x[0], y[0], idx[0]
        index = torch.as_tensor(i, dtype=torch.int64).reshape(-1)
        return self.fetch(index)

    def subset(self, index: torch.Tensor, *, augment: Any | None = None) -> TensorSplit:
        """A new split of the rows ``index`` (re-indexed from 0), sharing the transform."""
        return TensorSplit(
            self.inputs[index],
            self.targets[index],
            transform=self.transform,
            augment=augment,
            seed=self.seed,
        )


@dataclass
class DataBundle:
    """The three splits of a dataset plus what a model and trainer need to know about it.

    Attributes:
        name: registry name of the dataset.
        train, val, test: datasets yielding ``(input float32, target int64 0-d, index int64 0-d)``.
        num_classes: number of classes.
        input_shape: one sample's shape without batch, e.g. ``(1, 8, 8)``.
        augmented: True when ``train`` draws random augmentation (teacher-logit caching off).
        classes: class names in label order (may be empty).
        info: provenance: split sizes, normalisation, source files, generator settings.
    """

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    augmented: bool
    classes: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, split: str) -> Dataset:
        """The dataset of ``split`` (``train``, ``val`` or ``test``)."""
        if split not in SPLITS:
            raise ConfigError(
                f"unknown split '{split}'; choose one of {', '.join(SPLITS)}", "data.split"
            )
        return getattr(self, split)

    def targets(self, split: str) -> torch.Tensor:
        """All integer labels of ``split`` in index order, int64 of shape ``(N,)``."""
        ds = self.split(split)
        labels = getattr(ds, "targets", None)
        if isinstance(labels, torch.Tensor):
            return labels.to(torch.int64).reshape(-1).clone()
        return torch.stack([torch.as_tensor(ds[i][1]) for i in range(len(ds))]).to(torch.int64)


def stratified_split(
    targets: torch.Tensor, fractions: Sequence[float], seed: int
) -> list[torch.Tensor]:
    """Split indices ``0..N-1`` into ``len(fractions) + 1`` stratified parts.

    For each class ``c`` with ``n_c`` samples, a seeded permutation (``torch.Generator``
    seeded with ``seed``) assigns ``round(n_c * f_k)`` samples to part ``k`` for each fraction
    ``f_k`` and the rest to the last part. Each part is returned sorted (ascending).

    Args:
        targets: ``(N,)`` integer labels.
        fractions: fractions of the first parts, each in ``(0, 1)``, summing below 1.
        seed: the split's seed; the same seed gives the same split.

    Returns:
        Index tensors (int64), first the fraction parts then the remainder.
    """
    g = torch.Generator().manual_seed(int(seed))
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for c in torch.unique(targets).tolist():
        idx = torch.nonzero(targets == c).reshape(-1)
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        start = 0
        for k, f in enumerate(fractions):
            take = min(int(round(idx.numel() * f)), idx.numel() - start)
            parts[k].append(idx[start : start + take])
            start += take
        parts[-1].append(idx[start:])
    return [torch.sort(torch.cat(p)).values if p else torch.empty(0, dtype=torch.int64) for p in parts]


def check_options(dataset: str, builder: Callable[..., Any], options: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` for an option ``builder`` does not accept, listing the valid ones."""
    params = inspect.signature(builder).parameters
    valid = sorted(n for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n not in ("root", "seed"))
    for key in options:
        if key not in valid:
            guess = closest(key, valid)
            hint = f"; did you mean '{guess}'?" if guess else ""
            raise ConfigError(
                f"unknown option '{key}' for dataset '{dataset}'{hint} Valid options: "
                + (", ".join(valid) or "none"),
                f"data.{key}",
            )


def check_fraction(name: str, value: float, *, low: float = 0.0, high: float = 1.0) -> float:
    """Return ``value`` as float if ``low < value < high`` else raise :class:`ConfigError`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected a number, got {value!r}", f"data.{name}") from None
    if not low < v < high:
        raise ConfigError(f"must lie strictly between {low} and {high}, got {v}", f"data.{name}")
    return v


def default_root() -> Path:
    """Data root when none is given: ``$LEANDL_DATA_ROOT`` or ``./data``."""
    return Path(os.environ.get("LEANDL_DATA_ROOT", "data"))


def candidate_dirs(root: str | Path | None, name: str, extra: Sequence[str] = ()) -> list[Path]:
    """Directories searched for ``name``'s files: ``root/name``, ``root``, then ``root/extra...``."""
    base = Path(root) if root is not None else default_root()
    return [base / name, base, *(base / e for e in extra)]


def missing_files_error(name: str, searched: Sequence[Path], expected: Sequence[str]) -> DataError:
    """The error for absent dataset files: where we looked, what we wanted, how to get it."""
    where = ", ".join(str(p) for p in searched)
    root = searched[0].parent if searched and searched[0].name == name else (searched[0] if searched else Path("."))
    return DataError(
        f"dataset '{name}' files not found; searched {where} for {', '.join(expected)}",
        f"data '{name}'",
        f"download them with `leandl data download {name} --root {root}` "
        f"(or copy the files into one of those directories)",
    )
