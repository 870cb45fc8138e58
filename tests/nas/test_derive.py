from __future__ import annotations

import pytest
import torch

import leandl
from leandl.errors import ConfigError
from leandl.measure import count_macs
from leandl.models import create_model
from leandl.nas.derive import cellnet_macs, check_genotype, derive_genotype, fit_width

G = {"nodes": 2, "normal": [["sep_conv_3", 0, 1], ["skip", 0, 2], ["conv_3", 1, 2]],
     "reduce": [["max_pool_3", 0, 1], ["dil_conv_3", 0, 2], ["skip", 1, 2]]}


def test_derive_keeps_top2_edges_and_never_none():
    ops = ["none", "skip", "conv_3"]
    a = torch.tensor([[0.0, 5.0, 0.0],    # edge 0->1: skip
                      [0.0, 0.0, 1.0],    # edge 0->2: conv_3, weight e/(2+e) = 0.58
                      [9.0, 0.0, 2.0]])   # edge 1->2: none is strongest but dropped -> conv_3
    g = derive_genotype({"normal": a, "reduce": a}, ops, nodes=2)
    assert g["normal"] == [["skip", 0, 1], ["conv_3", 0, 2], ["conv_3", 1, 2]]
    b = torch.tensor([[0.0, 5.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    g = derive_genotype({"normal": a, "reduce": b}, ops, nodes=2, top_k=1)
    # node 2 keeps its stronger edge: 1->2 conv_3 (e^3/(2+e^3)=0.91) over 0->2 skip (0.58)
    assert g["reduce"] == [["skip", 0, 1], ["conv_3", 1, 2]]


def test_genotype_validation_names_the_problem():
    check_genotype(G)
    with pytest.raises(ConfigError, match="bad edge"):
        check_genotype({**G, "normal": [["skip", 2, 1]]})
    with pytest.raises(ConfigError, match="none"):
        check_genotype({**G, "normal": [["none", 0, 1]]})
    with pytest.raises(ConfigError, match="unknown operation"):
        check_genotype({**G, "reduce": [["conv_11", 0, 1]]})


def test_macs_by_hand_and_fit_width_is_the_widest_within_target():
    # normal cell at width 4, L=40 (no preprocess): sep_conv_3 = 2 x (dw 4*3*40 + pw 4*4*40) = 2240,
    # conv_3 = 4*4*3*40 = 1920, skip 0; stem 1->4 k3: 4*3*40 = 480
    net = create_model("nas_cellnet", genotype=G, input_shape=[1, 40], width=4, cells=1)
    assert count_macs(net, torch.zeros(1, 1, 40)).total == 480 + 2240 + 1920 + 4 * 40 * 10
    target = 422400  # mnist1d_cnn width 32
    w = fit_width(G, target, (1, 40))
    assert cellnet_macs(G, w, (1, 40)) <= target < cellnet_macs(G, w + 2, (1, 40))
    with pytest.raises(ConfigError, match="MACs"):
        fit_width(G, 100, (1, 40))


def test_saved_searched_model_reloads_from_its_json_spec(tmp_path):
    torch.manual_seed(0)
    m = create_model("nas_cellnet", genotype=G, input_shape=[1, 8, 8], width=6).eval()
    leandl.save(m, tmp_path / "ck")
    meta = (tmp_path / "ck" / "leandl.json").read_text()
    assert "dil_conv_3" in meta  # the genotype is the spec
    back = leandl.load(tmp_path / "ck").eval()  # no trust needed: a registry model
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(back(x), m(x))
