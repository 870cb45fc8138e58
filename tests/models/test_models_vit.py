"""ViT attention and MLP stay runnable after heads or hidden units are sliced out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.errors import ModelError
from leandl.models import create_model
from leandl.models.vit import Attention


def _slice_linear(layer: nn.Linear, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> nn.Linear:
    w = layer.weight.data
    b = layer.bias.data
    if out_idx is not None:
        w, b = w[out_idx], b[out_idx]
    if in_idx is not None:
        w = w[:, in_idx]
    new = nn.Linear(w.shape[1], w.shape[0])
    new.weight.data.copy_(w)
    new.bias.data.copy_(b)
    return new


def test_attention_matches_manual_reference() -> None:
    torch.manual_seed(0)
    attn = Attention(dim=12, num_heads=3)
    x = torch.randn(2, 5, 12)
    q, k, v = attn.qkv(x).reshape(2, 5, 3, 3, 4).permute(2, 0, 3, 1, 4)
    ref = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1) @ v  # scale 1/sqrt(4)
    ref = attn.proj(ref.transpose(1, 2).reshape(2, 5, 12))
    torch.testing.assert_close(attn(x), ref)


def test_head_count_derived_after_slicing_heads() -> None:
    torch.manual_seed(0)
    model = create_model("vit_tiny", input_shape=(3, 8, 8), depth=2).eval()
    attn = model.blocks[0].attn
    assert (attn.num_heads, attn.head_dim) == (3, 64)
    keep_heads = [0, 2]
    hd = attn.head_dim
    within = torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in keep_heads])  # one of q/k/v
    qkv_idx = torch.cat([within + part * 3 * hd for part in range(3)])
    x = torch.randn(2, 17, 192)
    # Reference: the full attention with the dropped head's proj inputs zeroed.
    with torch.no_grad():
        mask = torch.zeros(3 * hd)
        mask[within] = 1
        attn.proj.weight.data *= mask
        ref = attn(x)
    attn.qkv = _slice_linear(attn.qkv, qkv_idx, None)
    attn.proj = _slice_linear(attn.proj, None, within)
    assert attn.num_heads == 2
    with torch.no_grad():
        torch.testing.assert_close(attn(x), ref, rtol=1e-5, atol=1e-5)
        assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_num_heads_setter_recomputes_head_dim() -> None:
    attn = Attention(dim=12, num_heads=3)  # head_dim 4
    keep = torch.tensor([0, 1, 4, 5, 8, 9])  # two of four dims in each head, per q/k/v
    attn.qkv = _slice_linear(attn.qkv, torch.cat([keep, keep + 12, keep + 24]), None)
    attn.proj = _slice_linear(attn.proj, None, keep)
    attn.num_heads = 3  # what Torch-Pruning sets after pruning within heads
    assert (attn.num_heads, attn.head_dim) == (3, 2)
    assert attn(torch.randn(2, 5, 12)).shape == (2, 5, 12)
    with pytest.raises(ModelError, match="heads"):
        attn.num_heads = 5


def test_mlp_hidden_units_read_from_layers() -> None:
    model = create_model("vit_tiny", input_shape=(1, 8, 8), depth=1).eval()
    mlp = model.blocks[0].mlp
    keep = torch.arange(0, 768, 3)
    mlp.fc1 = _slice_linear(mlp.fc1, keep, None)
    mlp.fc2 = _slice_linear(mlp.fc2, None, keep)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_patch_size_defaults_and_exit_points() -> None:
    big = create_model("vit_tiny", input_shape=(3, 32, 32), depth=2)
    small = create_model("vit_tiny", input_shape=(1, 8, 8), depth=2)
    assert big.patch_embed.proj.kernel_size == (4, 4) and big.patch_embed.pos_embed.shape[1] == 65
    assert small.patch_embed.proj.kernel_size == (2, 2) and small.patch_embed.pos_embed.shape[1] == 17
    assert small.exit_points == ("blocks.0", "blocks.1")
    assert small.feature_layout == "nld"
