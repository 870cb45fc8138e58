"""Channel rules of the ATen-level tracer, each on a tiny hand-built graph.

Each test checks the coupling leandl derives (group sizes, producer/consumer slices with their
offsets and unit widths) by hand, and where it prunes, that physical removal equals zeroing
the same units in a copy (exactness).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leandl.errors import ModelError
from leandl.prune.groups import channel_groups, remove_units_, zero_units_
from leandl.prune._trace import trace_spaces


def _exact(model: nn.Module, x: torch.Tensor, name: str, keep: list[int]) -> None:
    groups = {g.name: g for g in channel_groups(model, x, keep_io=False)}
    g = groups[name]
    soft = copy.deepcopy(model)
    zero_units_(soft, g, torch.tensor(sorted(set(range(g.size)) - set(keep))))
    with torch.no_grad():
        ref = soft(x)
    remove_units_(model, x, {name: keep})
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-4)


class Grouped(nn.Module):
    """ResNeXt-style: 1x1 (8) -> grouped 3x3 (groups 4, 8 -> 8) -> 1x1."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.g = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.b = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.g(torch.relu(self.a(x)))))


def test_grouped_conv_prunes_whole_groups() -> None:
    x = torch.randn(1, 3, 5, 5)
    groups = channel_groups(Grouped(), x, keep_io=False)
    (g,) = [g for g in groups if g.name == "a"]
    # 4 units (conv groups) of 2 channels each: a's filters, g's filters, b's inputs
    assert g.size == 4 and g.unit == 2
    assert ("g", "weight", 0) in g.producers and ("b", "weight", 1) in g.consumers
    assert dict(zip(g.producers, g.producer_maps))[("a", "weight", 0)] == (0, 2)
    torch.manual_seed(0)
    m = Grouped().eval()
    _exact(m, x, "a", [0, 3])
    assert m.g.groups == 2 and m.g.in_channels == 4 and m.b.in_channels == 4


class GQA(nn.Module):
    """4 query heads sharing 2 key/value heads (head_dim 2), SDPA with repeated kv."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(6, 8)
        self.k = nn.Linear(6, 4)
        self.v = nn.Linear(6, 4)
        self.o = nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.q(x).view(b, n, 4, 2).transpose(1, 2)
        k = self.k(x).view(b, n, 2, 2).transpose(1, 2).repeat_interleave(2, dim=1)
        v = self.v(x).view(b, n, 2, 2).transpose(1, 2)[:, :, None].expand(b, 2, 2, n, 2)
        y = F.scaled_dot_product_attention(q, k, v.reshape(b, 4, n, 2))
        return self.o(y.transpose(1, 2).reshape(b, n, 8))


def test_grouped_query_attention_prunes_kv_groups_with_their_query_heads() -> None:
    x = torch.randn(1, 5, 6)
    (g,) = channel_groups(GQA(), x, keep_io=False)  # toy: q is the first layer
    assert (g.name, g.kind, g.size, g.unit) == ("q", "head", 2, 4)
    maps = dict(zip(g.producers, g.producer_maps))
    assert maps[("q", "weight", 0)] == (0, 4)  # one kv group = 2 query heads x head_dim 2
    assert maps[("k", "weight", 0)] == (0, 2) and maps[("v", "weight", 0)] == (0, 2)
    assert dict(zip(g.consumers, g.consumer_maps))[("o", "weight", 1)] == (0, 4)


class FusedQKV(nn.Module):
    """timm-style qkv: Linear(d, 3*H*D) reshaped to (3, H, D) and unbound."""

    def __init__(self) -> None:
        super().__init__()
        self.num_heads = 4  # updated by the surgery, as in timm
        self.qkv = nn.Linear(8, 3 * 4 * 2)
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, 2).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, -1)) + x


def test_fused_qkv_heads_tie_their_q_k_v_rows() -> None:
    x = torch.randn(1, 3, 8)
    (g,) = channel_groups(FusedQKV(), x, keep_io=False)
    assert g.kind == "head" and g.size == 4 and g.unit == 2
    offsets = sorted(o for (m, p, d), (o, r) in zip(g.producers, g.producer_maps)
                     if (m, p) == ("qkv", "weight"))
    assert offsets == [0, 8, 16]  # q, k and v parts, 2 rows per head each
    torch.manual_seed(0)
    m = FusedQKV().eval()
    _exact(m, x, g.name, [1, 2])
    assert m.num_heads == 2 and m.qkv.out_features == 12 and m.proj.in_features == 4


class Functional(nn.Module):
    """Functional norms and a layer-scale parameter (timm style), plus an embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.fc1 = nn.Linear(4, 6)
        self.ln_w = nn.Parameter(torch.rand(6) + 0.5)
        self.gamma = nn.Parameter(torch.rand(6) + 0.5)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.fc1(self.emb(ids))
        h = F.layer_norm(h, h.shape[-1:], self.ln_w) * self.gamma
        return self.fc2(h)


def test_functional_norm_and_layer_scale_parameters_are_producers() -> None:
    ids = torch.tensor([[1, 2, 3]])
    groups = channel_groups(Functional(), ids)  # the embedding is the first layer: kept
    assert [g.name for g in groups] == ["fc1"]
    prods = set(groups[0].producers)
    assert {("", "ln_w", 0), ("", "gamma", 0), ("fc1", "bias", 0)} <= prods
    assert ("fc2", "weight", 1) in groups[0].consumers
    m = Functional().eval()
    remove_units_(m, ids, {"fc1": [0, 2, 5]})  # not exact: the norm's statistics change
    assert m.ln_w.shape == m.gamma.shape == (3,) and m.fc2.in_features == 3
    with torch.no_grad():
        assert m(ids).shape == (1, 3, 3)


class GroupNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.gn = nn.GroupNorm(4, 8)
        self.b = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.gn(self.a(x)))


def test_group_norm_prunes_whole_norm_groups() -> None:
    x = torch.randn(1, 3, 4, 4)
    groups = channel_groups(GroupNormNet(), x, keep_io=False)
    g = [g for g in groups if g.name == "a"][0]
    assert g.size == 4 and g.unit == 2
    torch.manual_seed(0)
    m = GroupNormNet().eval()
    _exact(m, x, "a", [1, 2])
    assert m.gn.num_groups == 2 and m.gn.num_channels == 4


class NoRule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.fft.fft(self.a(x), dim=1).real)  # mixes channels: no rule


def test_op_without_rule_keeps_channels_whole_or_raises_when_strict() -> None:
    x = torch.randn(1, 3, 4, 4)
    kept: dict[str, str] = {}
    assert channel_groups(NoRule(), x, keep_io=False, kept_whole=kept) == []
    assert "fft" in kept["a"]
    with pytest.raises(ModelError, match="fft"):
        channel_groups(NoRule(), x, keep_io=False, strict=True)


class TrainOnlyBranch(nn.Module):
    """An auxiliary head that runs only in training (GoogLeNet/Inception style)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(8, 2, 1)
        self.aux = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.b(h) + self.aux(h) if self.training else self.b(h)


def test_train_only_branch_is_traced_and_sliced() -> None:
    x = torch.randn(1, 3, 4, 4)
    m = TrainOnlyBranch().eval()
    (g,) = channel_groups(m, x, keep_io=False)
    assert ("aux", "weight", 1) in g.consumers
    remove_units_(m, x, {"a": [0, 1, 2]})
    m.train()
    assert m(torch.randn(2, 3, 4, 4)).shape == (2, 2, 4, 4) and m.aux.in_channels == 3


def test_trace_leaves_norm_statistics_untouched() -> None:
    m = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1)).eval()
    before = [b.clone() for b in m.buffers()]
    trace_spaces(m, torch.randn(1, 3, 4, 4) * 10)
    assert all(torch.equal(a, b) for a, b in zip(before, m.buffers()))
    assert not m.training
