from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from leandl.data import load_data, make_loader
from leandl.deploy import ptq_onnx
from leandl.models import create_model
from leandl.quantize.config import QuantConfig
from leandl.quantize.convert import float_twin, has_fake_quant
from leandl.quantize.export import export_int8_onnx, run_onnx
from leandl.quantize.fake_quant import FakeQuantConv2d, FakeQuantLinear
from leandl.quantize.qat import prepare_qat


def _hand_layer() -> FakeQuantLinear:
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.93, -0.31, 0.05], [0.4, 0.25, -1.0]]))
        lin.bias.copy_(torch.tensor([0.1, -0.2]))
    layer = FakeQuantLinear.from_float(lin, QuantConfig(bits=4, method="lsq"),
                                       QuantConfig(bits=4, method="lsq", signed=False))
    with torch.no_grad():
        for q, step in ((layer.weight_quant, 0.2), (layer.act_quant, 0.5)):
            q.step.fill_(step)
            q.initialized.fill_(1)
    return layer.eval()


def test_float_twin_hand_case() -> None:
    layer = _hand_layer()
    twin = float_twin(nn.Sequential(layer))
    clamp, plain = twin[0][0], twin[0][1]
    # 4-bit unsigned activations, step 0.5: codes 0..15, range [0, 7.5]
    assert isinstance(clamp, nn.Hardtanh) and (clamp.min_val, clamp.max_val) == (0.0, 7.5)
    # W / 0.2 = [[4.65, -1.55, 0.25], [2, 1.25, -5]] -> codes [[5, -2, 0], [2, 1, -5]]
    assert type(plain) is nn.Linear
    torch.testing.assert_close(plain.weight, torch.tensor([[1.0, -0.4, 0.0], [0.4, 0.2, -1.0]]))
    x = torch.tensor([[1.0, 2.5, 9.0]])  # on the activation grid but for 9.0, clipped to 7.5
    expected = torch.tensor([[1.0 - 1.0 + 0.0 + 0.1, 0.4 + 0.5 - 7.5 - 0.2]])
    torch.testing.assert_close(twin(x), expected)
    torch.testing.assert_close(layer(x), expected)
    assert isinstance(layer.weight_quant, nn.Module) and has_fake_quant(nn.Sequential(layer))
    assert not has_fake_quant(twin)


def test_float_twin_8bit_layers_get_no_clamp_and_model_is_untouched() -> None:
    torch.manual_seed(0)
    model = create_model("digits_cnn", num_classes=10, input_shape=(1, 8, 8), width=8)
    x = torch.rand(16, 1, 8, 8)
    prepare_qat(model, x, weight_bits=8, act_bits=8)
    model.eval()
    twin = float_twin(model)
    assert isinstance(model.stem[0], FakeQuantConv2d)  # the QAT model keeps its layers
    assert type(twin.stem[0]) is nn.Conv2d and not any(isinstance(m, nn.Hardtanh) for m in twin.modules())
    torch.testing.assert_close(twin.stem[0].weight, model.stem[0].quantized_weight())


def _optimized_ops(path: Path, tmp: Path) -> Counter:
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp / "opt.onnx")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(str(tmp / "opt.onnx")).graph.node)


def test_ptq_of_a_qat_model_runs_on_int8_kernels(tmp_path: Path) -> None:
    data = load_data("digits", seed=0)
    xs = torch.cat([b[0] for b in make_loader(data.test, 1024, shuffle=False, seed=0, epoch=0)])
    torch.manual_seed(0)
    model = create_model("digits_cnn", num_classes=10, input_shape=(1, 8, 8), width=16)
    prepare_qat(model, xs[:64], weight_bits=4, act_bits=4)
    model.eval()
    with torch.no_grad():
        ref = model(xs).argmax(1).numpy()
    res = ptq_onnx(model, xs[:2], tmp_path / "deploy", calibration=[xs[:128], xs[128:256]])
    exact = export_int8_onnx(model, xs[:1], tmp_path / "exact.onnx")
    n_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    ops = _optimized_ops(res.int8_path, tmp_path)
    assert ops["QLinearConv"] == n_convs and ops["Conv"] == 0 and ops["FusedConv"] == 0
    exact_ops = _optimized_ops(exact, tmp_path)
    assert exact_ops["QLinearConv"] == 0  # the exact graph keeps float convs (why it is slow)
    assert res.int8_size_bytes * 3 < exact.stat().st_size
    agree = float(np.mean(run_onnx(res.int8_path, xs).argmax(1) == ref))
    assert agree >= 0.95, agree
