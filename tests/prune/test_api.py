"""leandl.prune_: targets, and prune -> forward -> save -> reload -> compare for many models."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import leandl
from leandl.checkpoint import load, save
from leandl.errors import ConfigError, ModelError
from leandl.models import create_model
from leandl.spec import get_edits, replay_edits

from tests.prune.test_groups import Dense

CASES = [
    ("resnet20", {"width": 8}, (3, 16, 16)),
    ("resnet56", {"width": 8}, (3, 8, 8)),
    ("resnet18", {}, (3, 8, 8)),
    ("resnet50", {}, (3, 8, 8)),
    ("vgg16_bn", {}, (3, 32, 32)),
    ("mobilenetv2", {"width_mult": 0.5}, (3, 8, 8)),
    ("wrn16_2", {}, (3, 8, 8)),
    ("vit_tiny", {"depth": 2, "dim": 48, "num_heads": 3}, (3, 8, 8)),
]


@pytest.mark.parametrize("name,kw,shape", CASES, ids=[c[0] for c in CASES])
def test_prune_30_percent_macs_save_reload(name: str, kw: dict, shape: tuple, tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, input_shape=shape, **kw).eval()
    x = torch.randn(2, *shape)
    scope = "layerwise" if name == "vit_tiny" else "global"  # 3 heads: show both kinds shrink
    report = leandl.prune_(model, x, criterion="l1", target={"macs": 0.7}, round_to=None,
                           scope=scope, allow_miss=name == "vit_tiny")  # 3 heads: coarse steps
    assert report.achieved["macs"] == pytest.approx(0.7, abs=0.03)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 10)
    if name == "vit_tiny":
        kinds = {k for k, (a, b) in report.widths.items() if b < a}
        assert any(k.endswith("attn") for k in kinds) and any(k.endswith("mlp") for k in kinds)
    save(model, tmp_path / "ck")
    again = load(tmp_path / "ck").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), out, atol=1e-5, rtol=0)


def test_densenet_cat_block_prunes_and_replays() -> None:
    torch.manual_seed(0)
    model = Dense().eval()
    x = torch.randn(2, 3, 6, 6)
    leandl.prune_(model, x, criterion="l2", target={"ratio": 0.5}, scope="layerwise")
    fresh = Dense()
    fresh = replay_edits(fresh, get_edits(model))
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), model(x), atol=1e-6, rtol=0)
    assert model.bn.num_features == 8 + 3 + 3


def test_bert_encoder_layer_heads_and_units() -> None:
    transformers = pytest.importorskip("transformers")
    from transformers.models.bert.modeling_bert import BertLayer

    cfg = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=4, intermediate_size=64)

    class Encoder(nn.Module):  # one BERT encoder layer
        def __init__(self) -> None:
            super().__init__()
            self.layer = BertLayer(cfg)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.layer(x)  # a tensor in transformers 5, a tuple before
            return out[0] if isinstance(out, tuple) else out

    torch.manual_seed(0)
    model = Encoder().eval()
    x = torch.randn(2, 6, 32)
    report = leandl.prune_(model, x, criterion="l1", target={"ratio": 0.5}, scope="layerwise")
    assert report.widths["layer.attention.self"] == [4, 2]
    assert report.widths["layer.intermediate.dense"] == [64, 32]
    assert model.layer.attention.self.num_attention_heads == 2
    with torch.no_grad():
        assert model(x).shape == (2, 6, 32)  # the residual stream keeps its width


def test_unprunable_ops_keep_channels_whole_or_raise_when_strict() -> None:
    x = torch.randn(1, 3, 8, 8)
    model = create_model("resnet20", input_shape=(3, 8, 8), shortcut="A", width=8)
    with pytest.raises(ModelError, match="shortcut"):
        leandl.prune_(model, x, strict=True)
    report = leandl.prune_(model, x, target={"ratio": 0.5}, scope="layerwise")
    assert any("padding the channel dim" in why for why in report.kept_whole.values())
    assert report.macs_after < report.macs_before
    with torch.no_grad():
        assert model(x).shape == (1, 10)


def test_target_miss_beyond_two_percent_is_an_error_unless_allowed() -> None:
    x = torch.randn(1, 3, 8, 8)
    model = create_model("resnet20", input_shape=(3, 8, 8), width=8)
    with pytest.raises(ModelError, match="2 % off"):
        leandl.prune_(model, x, target={"macs": 0.05}, max_ratio=0.5)
    report = leandl.prune_(model, x, target={"macs": 0.05}, max_ratio=0.5, allow_miss=True)
    assert report.achieved["macs"] > 0.07


def test_targets_ratio_params_and_validation() -> None:
    x = torch.randn(1, 3, 8, 8)
    m = create_model("resnet20", input_shape=(3, 8, 8), width=16)
    r = leandl.prune_(m, x, target={"params": 0.5}, scope="layerwise")
    assert r.achieved["params"] == pytest.approx(0.5, abs=0.03)
    m = create_model("resnet20", input_shape=(3, 8, 8), width=16)
    r = leandl.prune_(m, x, target={"ratio": 0.5}, scope="layerwise", round_to=8)
    assert all(b % 8 == 0 and b == a // 2 for a, b in r.widths.values())
    m = create_model("resnet20", input_shape=(3, 8, 8), width=16)
    r = leandl.prune_(m, x, target={"macs": 0.5}, iterative_steps=2)
    assert r.achieved["macs"] == pytest.approx(0.5, abs=0.03)
    assert len(get_edits(m)) == 2
    for bad in ({"macs": 1.5}, {"flops": 0.5}, {}):
        with pytest.raises(ConfigError):
            leandl.prune_(m, x, target=bad or {"ratio": -1})
    with pytest.raises(ConfigError, match="scope"):
        leandl.prune_(m, x, scope="everywhere")


def test_round_to_keeps_groups_no_wider_than_the_multiple() -> None:
    x = torch.randn(1, 3, 8, 8)
    m = create_model("resnet20", input_shape=(3, 8, 8), width=16)
    r = leandl.prune_(m, x, target={"macs": 0.5}, scope="global", round_to=16)
    for name, (before, after) in r.widths.items():
        assert after % 16 == 0 or after == before, (name, before, after)
    assert any(after < before for before, after in r.widths.values())


def test_global_scope_respects_max_ratio() -> None:
    x = torch.randn(1, 3, 8, 8)
    m = create_model("resnet20", input_shape=(3, 8, 8), width=16)
    r = leandl.prune_(m, x, target={"macs": 0.3}, scope="global", max_ratio=0.6)
    assert all(b >= 0.4 * a - 1e-9 for a, b in r.widths.values())


_RELOAD = """
import sys, torch, leandl
torch.set_num_threads(1)
from safetensors.torch import load_file
ref = load_file(sys.argv[2])
model = leandl.load(sys.argv[1]).eval()
with torch.no_grad():
    print((model(ref["x"]) - ref["y"]).abs().max().item())
"""


@pytest.mark.parametrize("round_to", [8, 16])
def test_resnet56_half_macs_reloads_in_a_fresh_process(round_to: int, tmp_path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = create_model("resnet56", num_classes=10, input_shape=(3, 32, 32)).eval()
    x = torch.randn(4, 3, 32, 32)
    report = leandl.prune_(model, x, criterion="l1", target={"macs": 0.5}, scope="global",
                           round_to=round_to)
    assert report.achieved["macs"] == pytest.approx(0.5, abs=0.03)
    assert all(b % round_to == 0 for _, b in report.widths.values())
    with torch.no_grad():
        y = model(x)
    save(model, tmp_path / "ck")
    save_file({"x": x, "y": y}, str(tmp_path / "ref.safetensors"))
    out = subprocess.run([sys.executable, "-c", _RELOAD, str(tmp_path / "ck"),
                          str(tmp_path / "ref.safetensors")], capture_output=True, text=True,
                         check=True)
    assert float(out.stdout.strip().splitlines()[-1]) <= 1e-5
    assert "pickle" not in (tmp_path / "ck" / "leandl.json").read_text()


class _DataDependent(nn.Module):
    """Python control flow on tensor values: torch.fx could not trace this; a concrete run can."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 16), nn.Linear(16, 16), nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        if h.sum() > -1e9:  # data-dependent branch
            h = torch.relu(self.b(h))
        return self.c(h)


def test_data_dependent_forward_prunes() -> None:
    model = _DataDependent()
    report = leandl.prune_(model, torch.randn(2, 3), target={"ratio": 0.5}, scope="layerwise")
    assert report.widths["b"] == [16, 8] and model.c.in_features == 8


def test_model_with_nothing_to_prune_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="no prunable channel group"):
        leandl.prune_(nn.Sequential(nn.Linear(3, 2)), torch.randn(1, 3))
