from __future__ import annotations

import torch
from torch import nn

from leandl.quantize.bn_fold import fold_model_bn


def test_bn_folding_leaves_outputs_unchanged() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Identity(), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 5), nn.BatchNorm1d(5))
    model.train()
    for _ in range(3):
        model(torch.randn(16, 3, 6, 6) * 2 + 1)  # non-trivial running statistics
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 2)
        model[1].bias.uniform_(-1, 1)
    model.eval()
    x = torch.randn(4, 3, 6, 6)
    ref = model(x)
    pairs = fold_model_bn(model)
    assert pairs == [("0", "1"), ("5", "6")]
    assert isinstance(model[1], nn.Identity) and model[0].bias is not None
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)
