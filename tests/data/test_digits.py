from __future__ import annotations

import torch

from leandl.data import load_data


def test_digits_shapes_dtypes_and_sizes() -> None:
    b = load_data("digits", seed=0)
    assert (b.num_classes, b.input_shape, b.augmented) == (10, (1, 8, 8), False)
    assert (len(b.train), len(b.val), len(b.test)) == (1079, 359, 359)
    x, y, i = b.train[5]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.dim() == 0 and i.dtype == torch.int64 and int(i) == 5
    xs = b.train[list(range(len(b.train)))][0]
    torch.testing.assert_close(xs.mean(), torch.tensor(0.0), rtol=0, atol=1e-5)
    torch.testing.assert_close(xs.std(), torch.tensor(1.0), rtol=0, atol=1e-3)


def test_digits_split_is_stratified_and_seeded() -> None:
    a, b, c = load_data("digits", seed=0), load_data("digits", seed=0), load_data("digits", seed=1)
    total = torch.bincount(torch.cat([a.targets(s) for s in ("train", "val", "test")]), minlength=10)
    for split, frac in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        counts = torch.bincount(a.targets(split), minlength=10).float()
        torch.testing.assert_close(counts, total.float() * frac, rtol=0, atol=1.0)
    torch.testing.assert_close(a.train.inputs, b.train.inputs, rtol=0, atol=0)
    torch.testing.assert_close(a.targets("test"), b.targets("test"), rtol=0, atol=0)
    assert not torch.equal(a.targets("test"), c.targets("test"))


def test_digits_arrays_equal_sklearn_load_digits() -> None:
    import numpy as np
    from sklearn.datasets import load_digits

    from leandl.data.digits import digits_arrays

    data, target = digits_arrays()
    ref = load_digits()
    assert data.shape == (1797, 64) and np.array_equal(data, ref.data) and np.array_equal(target, ref.target)


def test_loading_digits_does_not_import_sklearn() -> None:
    """Every `leandl run` on digits (and every crash-suite process) skips scikit-learn's ~1 s import."""
    import subprocess
    import sys

    code = ("import sys; from leandl.data import load_data; b = load_data('digits'); "
            "print(len(b.train), any(m.startswith('sklearn') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1079", "False"]
