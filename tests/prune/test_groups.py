"""Dependency groups, soft masks and physical surgery (leandl.prune.groups)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from leandl.errors import ModelError
from leandl.models import create_model
from leandl.prune.groups import channel_groups, remove_units_, unit_weights, zero_units_


class Tiny(nn.Module):
    """conv(2->4) -> BN -> ReLU -> conv(4->3) -> flatten -> linear; a residual-free chain."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 3, 1)
        self.fc = nn.Linear(3 * 2 * 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.c2(torch.relu(self.bn(self.c1(x)))), 1))


class Dense(nn.Module):
    """DenseNet-style block: every layer sees the concatenation of all earlier maps."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Sequential(nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1))
        self.b = nn.Sequential(nn.BatchNorm2d(14), nn.ReLU(), nn.Conv2d(14, 6, 3, padding=1))
        self.bn = nn.BatchNorm2d(20)
        self.fc = nn.Linear(20, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.cat([x, self.a(x)], 1)
        x = torch.cat([x, self.b(x)], 1)
        return self.fc(torch.relu(self.bn(x)).mean(dim=(2, 3)))


class ChunkCat(nn.Module):
    """Splits channels with chunk and re-concatenates them swapped."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.chunk(self.conv(self.stem(x)), 2, dim=1)
        return self.fc(torch.cat([b, a], 1).mean(dim=(2, 3)))


def _randomise_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)


def test_tiny_group_lists_every_coupled_slice() -> None:
    m = Tiny()
    x = torch.randn(1, 2, 2, 2)
    groups = {g.name: g for g in channel_groups(m, x)}
    assert set(groups) == {"c2"}  # c1 is the first layer (kept by default), fc the output
    g = groups["c2"]
    assert g.size == 3 and g.kind == "channel"
    assert g.producers == [("c2", "weight", 0), ("c2", "bias", 0)]
    assert g.consumers == [("fc", "weight", 1)]
    assert g.consumer_maps == [(0, 4)]  # flatten: each channel owns H*W = 4 inputs of fc
    all_groups = {g.name: g for g in channel_groups(m, x, keep_io=False)}
    assert ("bn", "running_var", 0) in all_groups["c1"].producers


def test_flatten_linear_surgery_keeps_the_right_columns() -> None:
    m = Tiny().eval()
    x = torch.randn(3, 2, 2, 2)
    w = m.fc.weight.detach().clone()
    remove_units_(m, x, {"c2": [0, 2]})
    assert m.fc.in_features == 8 and m.c2.out_channels == 2
    torch.testing.assert_close(m.fc.weight, torch.cat([w[:, 0:4], w[:, 8:12]], 1))


def test_unit_weights_concatenate_producing_filters() -> None:
    m = Tiny()
    x = torch.randn(1, 2, 2, 2)
    g = channel_groups(m, x)[0]
    uw = unit_weights(m, g)
    torch.testing.assert_close(uw, m.c2.weight.detach().reshape(3, -1))


@pytest.mark.parametrize("name,kw,shape", [
    ("resnet20", {"width": 8}, (3, 8, 8)),
    ("mobilenetv2", {"width_mult": 0.25}, (3, 8, 8)),
    ("vit_tiny", {"depth": 2, "dim": 48}, (3, 8, 8)),
])
def test_zeroing_units_equals_removing_them(name: str, kw: dict, shape: tuple) -> None:
    torch.manual_seed(0)
    m = create_model(name, num_classes=5, input_shape=shape, **kw).eval()
    _randomise_bn(m)
    x = torch.randn(2, *shape)
    groups = channel_groups(m, x)
    assert groups
    keep = {g.name: list(range(0, g.size, 2)) for g in groups}
    soft = copy.deepcopy(m)
    for g in groups:
        zero_units_(soft, g, torch.arange(1, g.size, 2))
    with torch.no_grad():
        ref = soft(x)
    remove_units_(m, x, keep)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-4)


def test_vit_heads_and_mlp_groups() -> None:
    m = create_model("vit_tiny", num_classes=3, input_shape=(3, 8, 8), depth=1, dim=24,
                     num_heads=3)
    x = torch.randn(1, 3, 8, 8)
    groups = {g.name: g for g in channel_groups(m, x)}
    assert groups["blocks.0.attn"].kind == "head" and groups["blocks.0.attn"].size == 3
    assert groups["blocks.0.mlp"].kind == "mlp_unit" and groups["blocks.0.mlp"].size == 96
    remove_units_(m, x, {"blocks.0.attn": [0, 2]})
    assert m.blocks[0].attn.num_heads == 2 and m.blocks[0].attn.proj.in_features == 16


def test_densenet_cat_block_is_exact() -> None:
    torch.manual_seed(0)
    m = Dense().eval()
    _randomise_bn(m)
    x = torch.randn(2, 3, 6, 6)
    groups = channel_groups(m, x)
    assert {g.name for g in groups} == {"a.2", "b.2"}
    soft = copy.deepcopy(m)
    for g in groups:
        zero_units_(soft, g, torch.tensor([0, 3]))
    with torch.no_grad():
        ref = soft(x)
    remove_units_(m, x, {g.name: [1, 2, 4, 5] for g in groups})
    assert m.bn.num_features == 16 and m.b[2].in_channels == 12
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-4)


def test_zero_pad_shortcut_is_refused_with_the_layer_name() -> None:
    m = create_model("resnet20", num_classes=10, input_shape=(3, 8, 8), shortcut="A", width=8)
    with pytest.raises(ModelError, match=r"layer2\.0\.shortcut.*pad"):
        channel_groups(m, torch.randn(1, 3, 8, 8), strict=True)
    kept_whole: dict[str, str] = {}
    groups = channel_groups(m, torch.randn(1, 3, 8, 8), kept_whole=kept_whole)
    assert groups and all("shortcut" in why for why in kept_whole.values())


def test_chunk_then_cat_splits_the_space_and_stays_exact() -> None:
    torch.manual_seed(0)
    m = ChunkCat().eval()
    x = torch.randn(2, 3, 4, 4)
    groups = channel_groups(m, x)
    assert [(g.name, g.size) for g in groups] == [("conv", 4), ("conv#2", 4)]
    assert groups[1].producer_maps[0] == (4, 1)  # the second half of conv's filters
    soft = copy.deepcopy(m)
    zero_units_(soft, groups[1], torch.tensor([1]))
    with torch.no_grad():
        ref = soft(x)
    remove_units_(m, x, {"conv#2": [0, 2, 3]})
    assert m.conv.out_channels == 7 and m.fc.in_features == 7
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-4)


def test_bad_keep_sets_raise() -> None:
    m = Tiny()
    x = torch.randn(1, 2, 2, 2)
    with pytest.raises(ModelError, match="no prunable group"):
        remove_units_(m, x, {"nope": [0]})
    with pytest.raises(ModelError, match="non-empty"):
        remove_units_(m, x, {"c2": []})
