from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from leandl.data import TensorSplit, make_loader
from leandl.data.loader import epoch_indices
from leandl.errors import ConfigError


def _split(n: int = 23) -> TensorSplit:
    return TensorSplit(torch.arange(n, dtype=torch.float32)[:, None] * 10, torch.arange(n) % 3)


def _order(loader) -> list[int]:
    return torch.cat([b[2] for b in loader]).tolist()


def test_order_depends_only_on_seed_and_epoch() -> None:
    ds = _split()
    a = _order(make_loader(ds, 5, shuffle=True, seed=1, epoch=2))
    assert a == _order(make_loader(ds, 5, shuffle=True, seed=1, epoch=2))
    assert a != _order(make_loader(ds, 5, shuffle=True, seed=1, epoch=3))
    assert a != _order(make_loader(ds, 5, shuffle=True, seed=2, epoch=2))
    assert sorted(a) == list(range(23))
    # a "resumed" loader built directly for epoch 2 equals the one seen after epochs 0 and 1
    for e in range(2):
        list(make_loader(ds, 5, shuffle=True, seed=1, epoch=e))
    assert _order(make_loader(ds, 5, shuffle=True, seed=1, epoch=2)) == a
    assert _order(make_loader(ds, 5, shuffle=False)) == list(range(23))


def test_batches_are_consistent_and_batched() -> None:
    ds = _split()
    batches = list(make_loader(ds, 5, shuffle=True, seed=0, epoch=0))
    assert [len(b[0]) for b in batches] == [5, 5, 5, 5, 3]
    for x, y, idx in batches:
        assert x.shape[1:] == (1,) and x.dtype == torch.float32 and y.dtype == torch.int64
        torch.testing.assert_close(x[:, 0], idx.float() * 10, rtol=0, atol=0)
        torch.testing.assert_close(y, idx % 3, rtol=0, atol=0)
    assert [len(b[0]) for b in make_loader(ds, 5, shuffle=True, drop_last=True)] == [5] * 4


def test_two_ranks_partition_the_epoch() -> None:
    ds = _split(23)
    r0 = _order(make_loader(ds, 4, shuffle=True, seed=7, epoch=1, rank=0, world_size=2))
    r1 = _order(make_loader(ds, 4, shuffle=True, seed=7, epoch=1, rank=1, world_size=2))
    assert len(r0) == len(r1) == 12
    full = epoch_indices(23, shuffle=True, seed=7, epoch=1).tolist()
    assert set(r0) | set(r1) == set(range(23))
    # padding wraps: the 24th slot repeats the first index of the permutation
    assert r1[-1] == full[0] and len(set(r0) & set(r1)) == 1
    even = _split(24)
    e0 = _order(make_loader(even, 4, shuffle=True, seed=7, epoch=1, rank=0, world_size=2))
    e1 = _order(make_loader(even, 4, shuffle=True, seed=7, epoch=1, rank=1, world_size=2))
    assert set(e0).isdisjoint(e1) and sorted(e0 + e1) == list(range(24))
    d0 = epoch_indices(23, shuffle=True, seed=7, epoch=1, rank=0, world_size=2, drop_last=True)
    d1 = epoch_indices(23, shuffle=True, seed=7, epoch=1, rank=1, world_size=2, drop_last=True)
    assert len(d0) == len(d1) == 11 and set(d0.tolist()).isdisjoint(d1.tolist())


class _PerSample(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int):  # noqa: ANN204
        return torch.full((2,), float(i)), torch.tensor(i % 2), torch.tensor(i)


def test_generic_dataset_uses_per_sample_collate_same_order() -> None:
    a = _order(make_loader(_PerSample(), 3, shuffle=True, seed=4, epoch=0))
    b = _order(make_loader(_split(10), 3, shuffle=True, seed=4, epoch=0))
    assert a == b
    x, _, idx = next(iter(make_loader(_PerSample(), 3, shuffle=True, seed=4)))
    torch.testing.assert_close(x[:, 0], idx.float(), rtol=0, atol=0)


def test_workers_give_the_same_batches() -> None:
    ds = _split(40)
    a = [b[0] for b in make_loader(ds, 8, shuffle=True, seed=3, epoch=1)]
    b = [b[0] for b in make_loader(ds, 8, shuffle=True, seed=3, epoch=1, num_workers=2)]
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        make_loader(_split(), 0, shuffle=True)
    with pytest.raises(ConfigError, match="rank"):
        make_loader(_split(), 2, shuffle=True, rank=2, world_size=2)
