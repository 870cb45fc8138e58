from __future__ import annotations

import pytest
import torch

from leandl.data import TensorSplit, make_loader
from leandl.data._base import DataBundle
from leandl.data.noise import CIFAR10_ASYMMETRIC, NoisyLabels, apply_noise, inject_noise
from leandl.errors import ConfigError
from leandl.recipes.schema import NoiseConfig

Y = torch.arange(10).repeat_interleave(100)  # 100 samples per class


def test_symmetric_exclude_true_exact_rate_never_keeps_label():
    noisy = inject_noise(Y, 10, type="symmetric", rate=0.4, seed=0)
    flipped = noisy != Y
    assert int(flipped.sum()) == 400
    for c in range(10):  # exactly round(0.4 * 100) per class
        assert int(flipped[Y == c].sum()) == 40
    # the wrong labels spread over the other classes
    assert len(torch.unique(noisy[flipped & (Y == 0)])) >= 5


def test_symmetric_include_true_effective_rate():
    noisy = inject_noise(torch.arange(10).repeat(2000), 10, rate=0.5, convention="include_true", seed=1)
    rate = float((noisy != torch.arange(10).repeat(2000)).float().mean())
    assert rate == pytest.approx(0.5 * 9 / 10, abs=0.01)


def test_pairflip_and_seed():
    noisy = inject_noise(Y, 10, type="pairflip", rate=0.2, seed=3)
    m = noisy != Y
    assert int(m.sum()) == 200
    torch.testing.assert_close(noisy[m], (Y[m] + 1) % 10)
    torch.testing.assert_close(noisy, inject_noise(Y, 10, type="pairflip", rate=0.2, seed=3))
    assert not torch.equal(noisy, inject_noise(Y, 10, type="pairflip", rate=0.2, seed=4))


def test_asymmetric_cifar10_mapping_and_user_mapping():
    noisy = inject_noise(Y, 10, type="asymmetric", rate=0.3, seed=0)
    m = noisy != Y
    assert set(torch.unique(Y[m]).tolist()) == {2, 3, 4, 5, 9}
    for src, dst in CIFAR10_ASYMMETRIC.items():
        assert int((m & (Y == src)).sum()) == 30
        assert set(noisy[m & (Y == src)].tolist()) == {dst}
    y3 = torch.arange(3).repeat(10)
    n3 = inject_noise(y3, 3, type="asymmetric", rate=1.0, mapping={0: 2})
    assert n3[y3 == 0].tolist() == [2] * 10 and torch.equal(n3[y3 != 0], y3[y3 != 0])
    with pytest.raises(ConfigError, match="mapping"):
        inject_noise(y3, 3, type="asymmetric", rate=0.2)
    with pytest.raises(ConfigError):
        inject_noise(y3, 3, type="asymmetric", rate=0.2, mapping={0: 7})


def test_bad_arguments():
    with pytest.raises(ConfigError):
        inject_noise(Y, 10, type="uniform")
    with pytest.raises(ConfigError):
        inject_noise(Y, 10, rate=1.5)
    with pytest.raises(ConfigError):
        inject_noise(Y, 5)  # labels outside [0, 5)


def _bundle() -> DataBundle:
    x = torch.randn(200, 1, 4)
    y = torch.arange(200) % 4
    split = TensorSplit(x, y)
    return DataBundle("toy", split, TensorSplit(x[:20], y[:20]), TensorSplit(x[:20], y[:20]), 4, (1, 4), False)


def test_apply_noise_bundle():
    b = _bundle()
    nb = apply_noise(b, NoiseConfig(type="symmetric", rate=0.25, seed=0))
    assert torch.equal(nb.clean_train_targets, b.train.targets)
    assert int((nb.noisy_train_targets != nb.clean_train_targets).sum()) == 48  # round(12.5) = 12 per class
    x, y, i = next(iter(make_loader(nb.train, 64, shuffle=True, seed=0)))
    torch.testing.assert_close(y, nb.noisy_train_targets[i])
    assert torch.equal(nb.val.targets, b.val.targets)  # val stays clean
    assert torch.equal(b.train.targets, torch.arange(200) % 4)  # the original is untouched
    assert nb.info["noise"]["realised_rate"] == pytest.approx(0.24)
    assert nb.noise.rate == 0.25


def test_wrapper_for_generic_datasets(blobs):
    train, _ = blobs
    noisy = (train.y + 1) % 3
    ds = NoisyLabels(train, noisy)
    x, y, i = ds[5]
    assert int(y) == int(noisy[5]) and torch.equal(x, train.x[5])
    _, yb, ib = next(iter(make_loader(ds, 16, shuffle=True, seed=0)))
    torch.testing.assert_close(yb, noisy[ib])
