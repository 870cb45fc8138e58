from __future__ import annotations

import random
import urllib.request

import numpy as np
import pytest
import torch

import leandl.data.mnist1d as m1d
from leandl.data import load_data


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("mnist1d must be generated locally, never downloaded")


def test_mnist1d_generated_locally_without_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import mnist1d.data
    import requests

    monkeypatch.setattr(mnist1d.data, "get_dataset", _refuse)
    monkeypatch.setattr(urllib.request, "urlopen", _refuse)
    monkeypatch.setattr(requests, "get", _refuse)
    monkeypatch.setattr(m1d, "_CACHE", {})
    np.random.seed(123)
    random.seed(123)
    before_np, before_py = np.random.get_state()[1].copy(), random.getstate()
    b = load_data("mnist1d", seed=0, num_samples=500)
    assert len(b.train) + len(b.val) == 400 and len(b.test) == 100
    assert abs(len(b.val) - 40) <= 5  # round(n_c * 0.1) per class
    assert b.input_shape == (1, 40) and b.num_classes == 10 and not b.augmented
    x, y, i = b.train[3]
    assert x.shape == (1, 40) and x.dtype == torch.float32 and y.dtype == torch.int64 and int(i) == 3
    # the generator's global seeding does not leak into the caller's RNG state
    np.testing.assert_array_equal(np.random.get_state()[1], before_np)
    assert random.getstate() == before_py
    # val carved per class: 10 % of each class of the 400 train samples
    train_all = torch.cat([b.targets("train"), b.targets("val")])
    torch.testing.assert_close(
        torch.bincount(b.targets("val"), minlength=10).float(),
        torch.bincount(train_all, minlength=10).float() * 0.1, rtol=0, atol=0.5,
    )


def test_mnist1d_cached_per_size_and_generator_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    import mnist1d.data

    calls = []

    original = mnist1d.data.make_dataset

    def counting(args: object) -> dict:
        calls.append(args)
        return original(args)

    monkeypatch.setattr(mnist1d.data, "make_dataset", counting)
    monkeypatch.setattr(m1d, "_CACHE", {})
    a = load_data("mnist1d", seed=0, num_samples=200)
    b = load_data("mnist1d", seed=1, num_samples=200)
    c = load_data("mnist1d", seed=0, num_samples=200, generator_seed=7)
    assert len(calls) == 2
    torch.testing.assert_close(a.test.inputs, b.test.inputs, rtol=0, atol=0)
    assert not torch.equal(a.targets("val"), b.targets("val"))
    assert not torch.equal(a.test.inputs, c.test.inputs)
