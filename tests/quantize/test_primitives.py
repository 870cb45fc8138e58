from __future__ import annotations

import pytest
import torch

from leandl.quantize.primitives import choose_qparams, dequantize, fake_quantize, qrange, quantize


def test_qrange_values() -> None:
    assert qrange(8, True) == (-128, 127)
    assert qrange(8, False) == (0, 255)
    assert qrange(4, True, signed=False) == (0, 15)
    with pytest.raises(ValueError):
        qrange(0, True)


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("per_channel", [False, True])
def test_round_trip_within_half_step(bits: int, symmetric: bool, per_channel: bool) -> None:
    g = torch.Generator().manual_seed(bits)
    lo = -torch.rand(3, generator=g) * 2 - 0.1
    hi = torch.rand(3, generator=g) * 3 + 0.1
    t = torch.linspace(0, 1, 501)
    x = lo[:, None] + (hi - lo)[:, None] * t[None, :]  # (3, 501): every channel's full range
    if per_channel:
        s, z = choose_qparams(lo, hi, bits, symmetric)
        axis = 0
    else:
        s, z = choose_qparams(lo.min(), hi.max(), bits, symmetric)
        axis = None
    qmin, qmax = qrange(bits, symmetric)
    q = quantize(x, s, z, qmin, qmax, axis)
    assert q.min() >= qmin and q.max() <= qmax
    err = (dequantize(q, s, z, axis) - x).abs()
    step = s[:, None] if per_channel else s
    assert bool((err <= step / 2 + 1e-6).all())


def test_per_channel_scales_match_manual() -> None:
    w = torch.tensor([[0.5, -1.0, 0.25], [2.0, 1.0, -3.0]])
    s, z = choose_qparams(w.min(1).values, w.max(1).values, 8, symmetric=True)
    torch.testing.assert_close(s, torch.tensor([1.0 / 127.5, 3.0 / 127.5]), rtol=0, atol=1e-7)
    assert z.tolist() == [0, 0]
    s, z = choose_qparams(torch.tensor([-1.0, 0.5]), torch.tensor([3.0, 2.0]), 8, symmetric=False)
    torch.testing.assert_close(s, torch.tensor([4.0 / 255, 2.0 / 255]), rtol=1e-6, atol=0)
    assert z.tolist() == [64, 0]  # round(0 - (-1) / (4/255)) = round(63.75); range widened to 0


def test_ste_gradient_identity_inside_zero_outside() -> None:
    s, z = torch.tensor(0.1), torch.tensor(0, dtype=torch.int32)
    x = torch.tensor([-2.0, -0.55, 0.0, 0.33, 0.64, 0.9], requires_grad=True)
    y = fake_quantize(x, s, z, -4, 3)  # grid -0.4 .. 0.3; codes of -0.55 and 0.64 exceed it
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(y.detach(), torch.tensor([-0.4, -0.4, 0.0, 0.3, 0.3, 0.3]))
