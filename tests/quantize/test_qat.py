from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from leandl import checkpoint
from leandl.data import TensorSplit, load_data, make_loader
from leandl.models import create_model
from leandl.quantize.export import count_qdq_nodes, export_int8_onnx, run_onnx
from leandl.quantize.fake_quant import FakeQuantConv2d, FakeQuantLinear, LSQQuantizer
from leandl.quantize.qat import QAT, prepare_qat, weight_bits_of
from leandl.registry import TECHNIQUES
from leandl.spec import get_edits
from leandl.train import TrainConfig, Trainer


def _tiny_model(width: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("digits_cnn", num_classes=10, input_shape=(1, 8, 8), width=width)


def test_qat_registered_and_validates() -> None:
    assert TECHNIQUES.get("qat") is QAT
    with pytest.raises(ValueError):
        QAT(weight_bits=9)
    with pytest.raises(ValueError):
        QAT(act_method="dorefa")


def test_two_batch_training_trains_lsq_steps() -> None:
    g = torch.Generator().manual_seed(0)
    data = TensorSplit(torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g))
    model = _tiny_model()
    tech = QAT(weight_bits=4, act_bits=4)
    cfg = TrainConfig(epochs=1, batch_size=32, optimizer="adam", lr=1e-2, progress=False)
    result = Trainer(model, cfg, train_data=data, val_data=None, num_classes=10, techniques=[tech]).fit()
    m = result.model
    assert isinstance(m.stem[0], FakeQuantConv2d) and isinstance(m.head.fc, FakeQuantLinear)
    assert isinstance(m.stem[1], torch.nn.Identity)  # BN folded
    bits = weight_bits_of(m)
    assert bits == {"stem.0": 8, "layer1.0": 4, "layer2.0": 4, "head.fc": 8}  # first/last at 8 bits
    assert result.metrics["qat_weight_bits"] == bits
    step = m.layer1[0].weight_quant
    assert isinstance(step, LSQQuantizer) and step.step.grad is not None  # the optimizer saw it
    assert get_edits(m)[-1]["kind"] == "qat_swap"


def test_quantized_checkpoint_loads_in_fresh_process(tmp_path: Path) -> None:
    model = _tiny_model()
    x = torch.rand(8, 1, 8, 8)
    prepare_qat(model, x, weight_bits=3, act_bits=4, bits={"layer2.0": 2})
    model.eval()
    expected = model(x).detach()
    checkpoint.save(model, tmp_path / "ck")
    torch.save(x, tmp_path / "x.pt")
    code = (
        "import json,sys,torch; from leandl import checkpoint\n"
        f"m = checkpoint.load({str(tmp_path / 'ck')!r})\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)\n"
        "print(json.dumps(m(x).tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = torch.tensor(json.loads(out.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    meta = json.loads((tmp_path / "ck" / "leandl.json").read_text())
    layers = {entry["name"]: entry["weight"]["bits"] for entry in meta["edits"][0]["layers"]}
    assert layers["layer2.0"] == 2 and layers["layer1.0"] == 3


def test_int8_onnx_agrees_with_fake_quant() -> None:
    data = load_data("digits", seed=0)
    xs = next(iter(make_loader(data.test, 1024, shuffle=False, seed=0, epoch=0)))[0]
    model = _tiny_model(width=8)
    prepare_qat(model, xs[:64], weight_bits=4, act_bits=8)
    model.eval()
    with torch.no_grad():
        ref = model(xs).numpy()
    path = export_int8_onnx(model, xs[:1], Path(__import__("tempfile").mkdtemp()) / "m.onnx")
    nodes = count_qdq_nodes(path)
    assert nodes["QuantizeLinear"] >= 8 and nodes["DequantizeLinear"] >= 8
    out = run_onnx(path, xs)
    agree = float(np.mean(out.argmax(1) == ref.argmax(1)))
    assert agree >= 0.99
    assert float(np.abs(out - ref).max()) < 1e-3
