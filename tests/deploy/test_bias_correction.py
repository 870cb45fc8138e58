"""Bias correction (Nagel et al. 2019): the hand-computed shift, and lower output error."""

from __future__ import annotations

import torch
from torch import nn

from leandl.deploy import bias_correct_, bias_correction_shifts, fold_batchnorm, quantize_weight_symmetric


def test_symmetric_weight_quantizer_hand_case() -> None:
    w = torch.tensor([[1.0, 0.3, -0.55], [0.2, -0.13, 0.0]])
    # per channel, 4 bits: q_max = 7; scales 1/7 and 0.2/7
    q = quantize_weight_symmetric(w, bits=4, per_channel=True)
    expected = torch.tensor([[7.0, 2.0, -4.0], [7.0, -5.0, 0.0]]) * torch.tensor([[1 / 7], [0.2 / 7]])
    torch.testing.assert_close(q, expected, atol=1e-7, rtol=0)
    # reduce_range at 8 bits: q_max = 64
    q8 = quantize_weight_symmetric(torch.tensor([[1.0, 0.5]]), bits=8, reduce_range=True)
    torch.testing.assert_close(q8, torch.tensor([[1.0, 32 / 64]]))


def test_shift_is_quantization_error_times_input_mean() -> None:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.3]]))
        layer.bias.fill_(0.5)
    # 4 bits, q_max 7, scale 1/7: 0.3 -> round(2.1)/7 = 2/7, error eps = 2/7 - 0.3 = -1/70
    x = torch.tensor([[2.0, 4.0], [4.0, 8.0]])  # E[x] = (3, 6)
    shifts = bias_correction_shifts(nn.Sequential(layer), [x], bits=4)
    torch.testing.assert_close(shifts["0"], torch.tensor([6.0 * (-1 / 70)]), atol=1e-6, rtol=0)
    bias_correct_(nn.Sequential(layer), [x], bits=4)
    torch.testing.assert_close(layer.bias.detach(), torch.tensor([0.5 + 6.0 / 70]), atol=1e-6, rtol=0)


def test_correction_reduces_output_error_of_a_conv() -> None:
    """Post-ReLU inputs (non-zero mean) and 4-bit weights: the mean error goes to ~0 and MSE drops."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3, padding=1)
    calib = [torch.relu(torch.randn(16, 4, 6, 6) + 0.5) for _ in range(4)]
    test = torch.relu(torch.randn(64, 4, 6, 6) + 0.5)
    ref = conv(test).detach()

    def quantized_output(layer: nn.Conv2d) -> torch.Tensor:
        q = layer._conv_forward(test, quantize_weight_symmetric(layer.weight, bits=4), layer.bias)
        return q.detach()

    before = quantized_output(conv) - ref
    model = nn.Sequential(conv)
    bias_correct_(model, calib, bits=4)
    after = quantized_output(model[0]) - ref
    mean_before = before.mean(dim=(0, 2, 3)).abs().mean()
    mean_after = after.mean(dim=(0, 2, 3)).abs().mean()
    assert mean_after < 0.2 * mean_before
    assert after.pow(2).mean() < before.pow(2).mean()


def test_layer_without_bias_gets_one_and_bn_folding_keeps_outputs() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    net.train()
    net(torch.randn(8, 2, 5, 5))  # non-trivial running statistics
    net.eval()
    folded = fold_batchnorm(net)
    x = torch.randn(3, 2, 5, 5)
    torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)
    plain = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False))
    bias_correct_(plain, [torch.randn(4, 2, 5, 5) + 1.0])
    assert plain[0].bias is not None and plain[0].bias.shape == (4,)
