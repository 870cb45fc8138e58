"""Hand-computed values of every distillation loss on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from leandl.distill import (attention_loss, build_regressor, dkd_loss, dkd_parts, fusion_loss, hint_loss, kd_loss,
                            mutual_loss, rkd_angle_loss, rkd_distance_loss, self_distill_loss, subclass_loss)
from leandl.distill._common import sigmoid_rampup
from leandl.errors import ModelError

TOL = {"rtol": 1e-5, "atol": 1e-6}


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def test_kd_value_t1() -> None:
    s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    torch.testing.assert_close(kd_loss(s, t, temperature=1.0), torch.tensor(_kl([0.75, 0.25], [0.5, 0.5])), **TOL)


def test_kd_value_and_t2_gradient_scale() -> None:
    temp = 2.0
    s = torch.tensor([[1.0, 0.0], [0.0, 0.0]], requires_grad=True)
    t = torch.tensor([[math.log(3.0), 0.0], [0.0, 2.0]])
    loss = kd_loss(s, t, temperature=temp)
    ps = [[math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)], [0.5, 0.5]]
    pt = [[math.sqrt(3) / (math.sqrt(3) + 1), 1 / (math.sqrt(3) + 1)], [1 / (1 + math.e), math.e / (1 + math.e)]]
    expected = temp**2 * (_kl(pt[0], ps[0]) + _kl(pt[1], ps[1])) / 2
    torch.testing.assert_close(loss, torch.tensor(expected), **TOL)
    loss.backward()
    # d/dz_s [T^2 KL] = T (p_s^T - p_t^T), averaged over the batch of 2
    grad = temp * (torch.tensor(ps) - torch.tensor(pt)) / 2
    torch.testing.assert_close(s.grad, grad, **TOL)


def test_kd_gradient_scale_is_temperature_invariant_for_large_t() -> None:
    # with T^2 the gradient tends to (z_s - z_t) / C (mean-zero logits), independent of T
    s = torch.tensor([[0.3, -0.1, -0.2]], requires_grad=True)
    t = torch.tensor([[0.5, 0.0, -0.5]])
    grads = []
    for temp in (50.0, 100.0):
        s.grad = None
        kd_loss(s, t, temperature=temp).backward()
        grads.append(s.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=2e-2, atol=1e-4)
    torch.testing.assert_close(grads[1], (s.detach() - t) / 3, rtol=2e-2, atol=1e-4)


def test_dkd_hand_value() -> None:
    s, t, y = torch.zeros(1, 3), torch.tensor([[math.log(2.0), 0.0, 0.0]]), torch.tensor([0])
    tckd, nckd, w = dkd_parts(s, t, y, temperature=1.0)
    torch.testing.assert_close(tckd, torch.tensor([_kl([0.5, 0.5], [1 / 3, 2 / 3])]), **TOL)
    torch.testing.assert_close(nckd, torch.tensor([0.0]), **TOL)
    torch.testing.assert_close(w, torch.tensor([0.5]), **TOL)
    torch.testing.assert_close(dkd_loss(s, t, y, alpha=2.0, beta=8.0, temperature=1.0), 2.0 * tckd[0], **TOL)


def test_dkd_parts_sum_to_kd() -> None:
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=gen) * 3, torch.randn(6, 5, generator=gen) * 3
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    for temp in (1.0, 4.0):
        tckd, nckd, w = dkd_parts(s, t, y, temperature=temp)
        kd = kd_loss(s, t, temperature=temp, reduction="none") / temp**2
        torch.testing.assert_close(tckd + w * nckd, kd, rtol=1e-4, atol=1e-5)
    # alpha = 1, beta = 1 - p_t,y per sample would be KD; DKD with beta = 1 differs by the coupling
    assert float((tckd + nckd - kd).abs().max()) > 1e-3


def test_fitnet_hint_with_known_regressor() -> None:
    reg = build_regressor((2, 2), (2, 3))
    with torch.no_grad():
        reg[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        reg[1].bias.zero_()
    s, t = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    # predictions [[1, 2, 3], [0, 0, 0]]; squared errors 9 and 1 over 6 entries
    torch.testing.assert_close(hint_loss(s, t, reg), torch.tensor(10.0 / 6.0), **TOL)


def test_fitnet_regressor_kinds_and_shape_error() -> None:
    assert isinstance(build_regressor((4, 8, 10), (4, 16, 5)), nn.Conv1d)
    assert isinstance(build_regressor((4, 8, 6, 6), (4, 16, 3, 3)), nn.Conv2d)
    loss = hint_loss(torch.randn(4, 8, 10), torch.randn(4, 16, 5), build_regressor((4, 8, 10), (4, 16, 5)))
    assert loss.dim() == 0
    with pytest.raises(ModelError, match="cannot match feature shapes"):
        build_regressor((4, 8, 10), (4, 16, 3, 3))


def test_attention_hand_value() -> None:
    s, t = torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[2.0, 1.0]]])
    # Q_s = [1, 4]/sqrt(17), Q_t = [4, 1]/sqrt(17): mean squared difference 9/17
    torch.testing.assert_close(attention_loss([s], [t]), torch.tensor(9.0 / 17.0), **TOL)
    with pytest.raises(ModelError, match="feature maps"):
        attention_loss([torch.randn(2, 3)], [torch.randn(2, 3)])


def test_rkd_distance_hand_value_and_angle_invariance() -> None:
    s, t = torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([[0.0], [1.0], [2.0]])
    # psi_s = d/2, psi_t = d/(4/3); four entries differ by 0.25 -> 4 * 0.5 * 0.0625 / 9
    torch.testing.assert_close(rkd_distance_loss(s, t), torch.tensor(0.125 / 9.0), **TOL)
    e = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(rkd_angle_loss(2.0 * e + 1.0, e), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(rkd_distance_loss(3.0 * e, e), torch.tensor(0.0), atol=1e-6, rtol=0)
    assert float(rkd_angle_loss(e[[1, 0, 2, 3, 4]] * torch.tensor([1.0, -1.0, 1.0]), e)) > 0


def test_mutual_terms() -> None:
    a, b = torch.tensor([[0.0, 0.0]], requires_grad=True), torch.tensor([[math.log(3.0), 0.0]], requires_grad=True)
    ta, tb = mutual_loss([a, b])
    torch.testing.assert_close(ta, torch.tensor(_kl([0.75, 0.25], [0.5, 0.5])), **TOL)
    torch.testing.assert_close(tb, torch.tensor(_kl([0.5, 0.5], [0.75, 0.25])), **TOL)
    ta.backward()
    assert b.grad is None  # the other peer is a constant in peer a's term


def test_self_and_fusion_terms() -> None:
    shallow, deep = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    torch.testing.assert_close(self_distill_loss([shallow, deep], temperature=1.0),
                               torch.tensor(_kl([0.75, 0.25], [0.5, 0.5])), **TOL)
    z1, z2, zf = torch.zeros(1, 2), torch.tensor([[2.0 * math.log(3.0), 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    # fused teaches z1 and z2; mean(z1, z2) = zf teaches zf (zero)
    expected = _kl([0.75, 0.25], [0.5, 0.5]) + _kl([0.75, 0.25], [0.9, 0.1])
    torch.testing.assert_close(fusion_loss([z1, z2], zf, temperature=1.0), torch.tensor(expected), **TOL)
    assert sigmoid_rampup(0.0, 0.5) == pytest.approx(math.exp(-5)) and sigmoid_rampup(0.6, 0.5) == 1.0


def test_subclass_nearest_same_class_neighbour() -> None:
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    # k=1: samples 0 and 1 are each other's neighbour; sample 2 has none
    expected = (0.75 - 0.5) ** 2 + (0.25 - 0.5) ** 2
    torch.testing.assert_close(subclass_loss(logits, y, k=1, temperature=1.0), torch.tensor(expected), **TOL)
    assert float(subclass_loss(logits, torch.tensor([0, 1, 2]), k=1)) == 0.0
