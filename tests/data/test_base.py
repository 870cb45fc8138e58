from __future__ import annotations

import pytest
import torch

from leandl.data import DataBundle, TensorSplit, load_data, stratified_split
from leandl.data._base import Standardize
from leandl.errors import ConfigError, UsageError


def test_stratified_split_is_seeded_stratified_and_partitions() -> None:
    y = torch.arange(1000) % 4
    a = stratified_split(y, [0.2, 0.1], seed=3)
    b = stratified_split(y, [0.2, 0.1], seed=3)
    c = stratified_split(y, [0.2, 0.1], seed=4)
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert not torch.equal(a[0], c[0])
    torch.testing.assert_close(torch.sort(torch.cat(a)).values, torch.arange(1000), rtol=0, atol=0)
    torch.testing.assert_close(torch.bincount(y[a[0]]), torch.full((4,), 50), rtol=0, atol=0)
    torch.testing.assert_close(torch.bincount(y[a[1]]), torch.full((4,), 25), rtol=0, atol=0)


def test_tensor_split_item_matches_batch_fetch() -> None:
    x = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    norm = Standardize.fit(x, 1 / 255)
    split = TensorSplit(x, torch.arange(10) % 3, transform=norm)
    xi, yi, ii = split[7]
    xb, yb, ib = split[[2, 7]]
    assert xi.dtype == torch.float32 and yi.dtype == torch.int64 and ii.dim() == 0 and int(ii) == 7
    torch.testing.assert_close(xi, xb[1], rtol=0, atol=0)
    torch.testing.assert_close(xi, (x[7].float() / 255 - norm.mean) / norm.std, rtol=1e-6, atol=1e-6)
    assert int(yb[1]) == 1 and ib.tolist() == [2, 7]
    with pytest.raises(IndexError):
        split[10]


def test_standardize_uint8_histogram_equals_float_moments() -> None:
    x = torch.randint(0, 256, (50, 3, 5, 5), dtype=torch.uint8)
    a = Standardize.fit(x, 1 / 255)
    b = Standardize.fit(x.to(torch.float64), 1 / 255)
    torch.testing.assert_close(a.mean, b.mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a.std, b.std, rtol=1e-6, atol=1e-6)
    assert a.mean.shape == (3, 1, 1)


def test_targets_in_index_order() -> None:
    bundle = load_data("synthetic", shape=[4], num_samples=30, num_val=10, num_test=10)
    assert isinstance(bundle, DataBundle)
    expected = torch.stack([bundle.val[i][1] for i in range(len(bundle.val))])
    torch.testing.assert_close(bundle.targets("val"), expected, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="train, val, test"):
        bundle.targets("dev")


def test_unknown_option_and_name_errors() -> None:
    with pytest.raises(ConfigError) as err:
        load_data("digits", val_frac=0.1)
    msg = str(err.value)
    assert "val_frac" in msg and "val_fraction" in msg and "test_fraction" in msg
    with pytest.raises(UsageError, match="did you mean 'digits'"):
        load_data("digit")
    with pytest.raises(ConfigError, match="val_fraction"):
        load_data("digits", val_fraction=1.5)
