"""attach_exits on every backbone family, errors, checkpoint round trip in a fresh process."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import leandl.checkpoint as ckpt
from leandl.dynamic import add_inline_links_, attach_exits, freeze_backbone_
from leandl.errors import ModelError
from leandl.models import create_model

CASES = [
    ("mnist1d_cnn", (1, 40), {}, ["stem", "layer1", "layer2"]),
    ("resnet20", (3, 8, 8), {}, ["layer1", "layer2"]),
    ("vgg11_bn", (3, 32, 32), {}, ["layer2", "layer4"]),
    ("mobilenetv2", (3, 8, 8), {"width_mult": 0.25}, ["layer2", "layer5"]),
    ("vit_tiny", (3, 8, 8), {"dim": 16, "depth": 3, "num_heads": 2}, ["blocks.0", "blocks.1"]),
]


@pytest.mark.parametrize("name,shape,kw,after", CASES)
def test_attach_gives_list_of_exit_logits(name, shape, kw, after) -> None:
    net = create_model(name, input_shape=shape, num_classes=5, **kw)
    model = attach_exits(net, after, head="mlp", hidden=8)
    outs = model(torch.randn(2, *shape))
    assert len(outs) == len(after) + 1 and all(o.shape == (2, 5) for o in outs)
    net.eval()
    model.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[-1], net(x), rtol=1e-5, atol=1e-5)


def test_bad_name_lists_valid_names() -> None:
    net = create_model("resnet20", input_shape=(3, 8, 8))
    with pytest.raises(ModelError, match="layer1, layer2, layer3"):
        attach_exits(net, ["layer4"])


def test_user_model_by_chain() -> None:
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.fc = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(self.b(self.a(x)))

    net = Net()
    with pytest.raises(ModelError, match="chain"):
        attach_exits(net, ["a"], input_shape=(4,))
    model = attach_exits(net, ["a", "b"], input_shape=(4,), chain=["a", "b"], final="fc")
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x)[-1], net(x))


def test_checkpoint_round_trip_fresh_process(tmp_path) -> None:
    torch.manual_seed(0)
    net = create_model("mnist1d_cnn", input_shape=(1, 40), width=8)
    model = attach_exits(net, ["stem", "layer1", "layer2"], head="mlp", pool=2, hidden=16)
    add_inline_links_(model, width=8)
    freeze_backbone_(model)
    model.eval()
    x = torch.randn(4, 1, 40)
    with torch.no_grad():
        ref = torch.stack(model(x))
    ckpt.save(model, tmp_path / "m")
    torch.save({"x": x, "ref": ref}, tmp_path / "io.pt")
    code = (
        "import torch, leandl.checkpoint as c\n"
        f"m = c.load(r'{tmp_path / 'm'}')\n"
        f"d = torch.load(r'{tmp_path / 'io.pt'}')\n"
        "with torch.no_grad(): out = torch.stack(m(d['x']))\n"
        "torch.testing.assert_close(out, d['ref'], rtol=1e-5, atol=1e-6)\n"
        "print(type(m).__name__, len(m.links))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["MultiExit", "3"]
