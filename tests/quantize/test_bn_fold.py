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


class _Block(nn.Module):
    """conv1 -> bn1 as attributes (folds); conv2's output also feeds the skip sum (does not)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(torch.relu(self.bn1(self.conv1(x))))
        return self.bn2(y) + y


def test_attribute_pairs_fold_and_shared_outputs_do_not() -> None:
    torch.manual_seed(0)
    block = _Block().train()
    for _ in range(3):
        block(torch.randn(8, 4, 5, 5) * 3 + 1)
    block.eval()
    x = torch.randn(2, 4, 5, 5)
    ref = block(x)
    assert fold_model_bn(block) == [("conv1", "bn1")]  # conv2 feeds bn2 and the sum
    assert isinstance(block.bn1, nn.Identity) and isinstance(block.bn2, nn.BatchNorm2d)
    torch.testing.assert_close(block(x), ref, rtol=1e-5, atol=1e-5)


def test_every_batchnorm_of_a_resnet_folds() -> None:
    from leandl.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    ref = model(x)
    assert len(fold_model_bn(model)) == 21  # stem, 2 per block, 2 downsample shortcuts
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-4)
