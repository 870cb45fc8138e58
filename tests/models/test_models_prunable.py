"""The reference models' structure suits dependency-graph pruning (Torch-Pruning)."""

from __future__ import annotations

import warnings

import pytest
import torch

from leandl.models import create_model

tp = pytest.importorskip("torch_pruning")


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2", "wrn16_2", "digits_cnn"])
def test_channel_pruning_keeps_a_working_model(name: str) -> None:
    model = create_model(name, input_shape=(3, 8, 8)).eval()
    x = torch.randn(2, 3, 8, 8)
    before = _params(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MetaPruner(
            model, x, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
            ignored_layers=[model.get_classifier()],
        )
        pruner.step()
    assert model(x).shape == (2, 10)
    assert _params(model) < 0.5 * before


def test_vit_head_pruning_with_torch_pruning() -> None:
    model = create_model("vit_tiny", input_shape=(3, 8, 8), depth=2).eval()
    x = torch.randn(2, 3, 8, 8)
    heads = {blk.attn.qkv: blk.attn.num_heads for blk in model.blocks}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MetaPruner(
            model, x, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
            num_heads=heads, prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=0.34,
            ignored_layers=[model.get_classifier()],
        )
        pruner.step()
    for blk in model.blocks:
        blk.attn.num_heads = pruner.num_heads[blk.attn.qkv]
        assert 1 <= blk.attn.num_heads < 3 and blk.attn.head_dim == 64  # whole heads removed
        assert blk.attn.qkv.out_features == 3 * blk.attn.num_heads * 64
        assert blk.attn.proj.in_features == blk.attn.num_heads * 64
    assert model(x).shape == (2, 10)
