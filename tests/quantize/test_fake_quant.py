from __future__ import annotations

import math

import torch
from torch import nn

from leandl.quantize.config import PerChannel, PerTensor, QuantConfig
from leandl.quantize.fake_quant import FakeQuantConv2d, LSQQuantizer, PACTQuantizer, make_quantizer
from leandl.quantize.observers import MovingAverageMinMaxObserver, MSEObserver, PercentileObserver


def test_lsq_step_gradient_matches_hand_computation() -> None:
    q = make_quantizer(QuantConfig(bits=2, method="lsq"), is_weight=True)
    assert isinstance(q, LSQQuantizer)
    with torch.no_grad():
        q.step.fill_(0.5)
        q.initialized.fill_(1)
    v = torch.tensor([0.3, -2.5, 1.9], requires_grad=True)
    q(v).sum().backward()
    # v/s = [0.6, -5, 3.8]; Q_N = 2, Q_P = 1 -> [round(0.6) - 0.6, -Q_N, Q_P] = [0.4, -2, 1]
    expected = (0.4 - 2.0 + 1.0) / math.sqrt(3 * 1)
    torch.testing.assert_close(q.step.grad, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v.grad, torch.tensor([1.0, 0.0, 0.0]))


def test_lsq_init_and_binary() -> None:
    w = torch.tensor([[1.0, -3.0], [0.5, 0.5]])
    q = make_quantizer(QuantConfig(bits=1, method="lsq", granularity=PerChannel(0)), 2, is_weight=True)
    out = q(w)
    torch.testing.assert_close(q.step.detach(), torch.tensor([2.0, 0.5]))  # mean |w| per channel
    torch.testing.assert_close(out, torch.tensor([[2.0, -2.0], [0.5, 0.5]]))


def test_pact_gradients() -> None:
    q = PACTQuantizer(QuantConfig(bits=2, method="pact", signed=False), alpha_init=3.0)
    x = torch.tensor([-1.0, 1.2, 2.9, 5.0], requires_grad=True)
    y = q(x)
    y.sum().backward()
    torch.testing.assert_close(y.detach(), torch.tensor([0.0, 1.0, 3.0, 3.0]))
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    torch.testing.assert_close(q.alpha.grad, torch.tensor(1.0))  # only x >= alpha


def test_observers() -> None:
    ema = MovingAverageMinMaxObserver(averaging_constant=0.5)
    ema(torch.tensor([0.0, 2.0]))
    ema(torch.tensor([-2.0, 4.0]))
    torch.testing.assert_close(ema.min_val, torch.tensor(-1.0))
    torch.testing.assert_close(ema.max_val, torch.tensor(3.0))
    x = torch.cat([torch.linspace(-1, 1, 10000), torch.tensor([100.0])])
    pct = PercentileObserver(percentile=99.9)
    pct(x)
    assert float(pct.max_val) < 1.01
    mse = MSEObserver()
    mse(torch.cat([torch.linspace(-1, 1, 10000), torch.tensor([5.0])]))
    s_mse, _ = mse.calculate_qparams(4, True)
    assert float(s_mse) < 0.5 * 5.0 / 7.5  # min-max would give 5 / 7.5; MSE clips the outlier


def test_fake_quant_conv_shares_weights_and_is_close_at_8_bits() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 5, 5)
    ref = conv(x)
    wcfg = QuantConfig(bits=8, granularity=PerChannel(0))
    acfg = QuantConfig(bits=8, symmetric=False, granularity=PerTensor())
    fq = FakeQuantConv2d.from_float(conv, wcfg, acfg).eval()
    assert fq.weight is conv.weight
    out = fq(x)
    assert float((out - ref).detach().abs().max()) < 0.05 * float(ref.detach().abs().max())
