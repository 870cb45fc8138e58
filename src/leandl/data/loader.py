"""Deterministic, shardable data loaders.

The order of an epoch is a function of ``(seed, epoch)`` only: a ``torch.Generator`` seeded with
:func:`leandl.data.augment.epoch_seed` draws the permutation, so a run resumed at epoch ``e``
sees exactly the batches an uninterrupted run sees. With ``world_size > 1`` the permutation is
padded by wrapping to a multiple of ``world_size`` (as ``DistributedSampler`` does) and rank
``r`` takes positions ``r, r + world_size, ...``: disjoint, equal-size shards.

In-memory :class:`~leandl.data._base.TensorSplit` datasets are fetched one whole batch per
index tensor (the sampler yields index lists and the loader runs with ``batch_size=None``),
so no per-sample Python runs; other datasets go through the usual per-sample collate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from leandl.data.augment import epoch_seed
from leandl.errors import ConfigError

__all__ = ["epoch_indices", "EpochBatchSampler", "make_loader"]


def epoch_indices(
    n: int,
    *,
    shuffle: bool,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
) -> torch.Tensor:
    """The sample indices rank ``rank`` visits in ``epoch``, in order.

    Args:
        n: dataset length.
        shuffle: permute with the ``(seed, epoch)`` generator, else ``0..n-1``.
        seed, epoch: what the order depends on.
        rank, world_size: the shard; ``world_size = 1`` is the whole epoch.
        drop_last: with shards, cut the tail so ``n`` divides evenly instead of wrapping.

    Returns:
        int64 indices of length ``ceil(n / world_size)`` (``floor`` with ``drop_last``).
    """
    if shuffle:
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    if world_size == 1:
        return order
    if drop_last:
        total = (n // world_size) * world_size
        order = order[:total]
    else:
        total = math.ceil(n / world_size) * world_size
        if total > n:
            reps = math.ceil(total / max(n, 1))
            order = order.repeat(reps)[:total]
    return order[rank:total:world_size]


class EpochBatchSampler(Sampler[Any]):
    """Yields the indices of :func:`epoch_indices`, ``batch_size`` at a time: lists of ints,
    or int64 tensors with ``as_tensor=True`` (for batched fetching)."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        epoch: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        as_tensor: bool = False,
    ) -> None:
        self.batch_size = batch_size
        self.as_tensor = as_tensor
        self.drop_last = drop_last
        self.order = epoch_indices(
            n, shuffle=shuffle, seed=seed, epoch=epoch, rank=rank,
            world_size=world_size, drop_last=drop_last,
        )

    def __iter__(self) -> Iterator[Any]:
        for batch in torch.split(self.order, self.batch_size):
            if self.drop_last and batch.numel() < self.batch_size:
                return
            yield batch if self.as_tensor else batch.tolist()

    def __len__(self) -> int:
        n = self.order.numel()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


def _as_batch(batch: Any) -> Any:
    """Collate for pre-batched fetches: the dataset already returned stacked tensors."""
    return batch


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """A ``DataLoader`` for one epoch whose batches depend only on ``(seed, epoch)`` and the shard.

    Args:
        dataset: any map-style dataset; in-memory ``TensorSplit`` splits are fetched in batches.
        batch_size: samples per batch (per rank).
        shuffle: draw a fresh permutation per epoch.
        seed, epoch: the order's (and augmentation's) random state.
        drop_last: drop the final short batch (and, with shards, the uneven tail).
        num_workers: loader worker processes.
        rank, world_size: this process's shard of the epoch.
        pin_memory: pin batches for faster host-to-GPU copies.

    Returns:
        A fresh loader; build one per epoch.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}", "data.batch_size")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}", "rank")
    batchable = bool(getattr(dataset, "batchable", False))
    sampler = EpochBatchSampler(
        len(dataset), batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
        drop_last=drop_last, rank=rank, world_size=world_size, as_tensor=batchable,
    )
    with_epoch = getattr(dataset, "with_epoch", None)
    if with_epoch is not None:
        dataset = with_epoch(epoch)
    # A loader's own generator keeps iterator creation from drawing on the global RNG, so
    # dropout and other global-RNG users see the same stream after a resume.
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    common: dict[str, Any] = {"num_workers": num_workers, "pin_memory": pin_memory, "generator": gen}
    if batchable:
        return DataLoader(dataset, batch_size=None, sampler=sampler, collate_fn=_as_batch, **common)
    return DataLoader(dataset, batch_sampler=sampler, **common)
