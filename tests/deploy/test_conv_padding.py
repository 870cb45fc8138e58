"""Zero-padding the input channels of graph-input convolutions (exactness, where it applies)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from leandl.deploy import OrtModule, export_onnx  # noqa: E402
from leandl.deploy.conv_padding import pad_input_convs  # noqa: E402
from leandl.deploy.ort_quantize import op_counts, quantize_static_onnx  # noqa: E402


class TwoHeads(nn.Module):
    """Two convolutions read the input (one ungrouped, one grouped) and a third reads an activation."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, padding=1, groups=3)
        self.c = nn.Conv2d(19, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.cat([self.a(x), self.b(x)], 1))


def _weights(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}


def test_pads_only_ungrouped_convs_on_graph_inputs_and_is_exact(tmp_path) -> None:
    torch.manual_seed(0)
    model = TwoHeads().eval()
    x = torch.randn(2, 3, 8, 8)
    path = export_onnx(model, x, tmp_path / "m.onnx")
    graph = onnx.load(str(path))
    padded = pad_input_convs(graph, 4)
    assert len(padded) == 1  # self.a only: self.b is grouped, self.c reads an activation
    shapes = _weights(graph)
    assert shapes[padded[0]] == (16, 4, 3, 3)
    assert sorted(s for s in shapes.values() if len(s) == 4) == [(3, 1, 3, 3), (16, 4, 3, 3), (16, 19, 1, 1)]
    assert [n.op_type for n in graph.graph.node].count("Pad") == 1
    onnx.save(graph, str(tmp_path / "p.onnx"))
    got = OrtModule(tmp_path / "p.onnx", threads=1)(x)
    torch.testing.assert_close(got, model(x).detach(), atol=1e-5, rtol=1e-5)
    assert pad_input_convs(graph, 4) == []  # already a multiple: nothing more to do


def test_no_padding_where_the_output_side_misses_the_kernel_anyway(tmp_path) -> None:
    for cout in (8, 20):  # fewer than 16, or not a multiple of 8
        path = export_onnx(nn.Conv2d(3, cout, 3), torch.randn(1, 3, 8, 8), tmp_path / f"c{cout}.onnx")
        assert pad_input_convs(onnx.load(str(path)), 4) == []


def test_multiple_is_checked() -> None:
    with pytest.raises(ValueError, match="multiple"):
        pad_input_convs(onnx.ModelProto(), 0)


def test_static_int8_stem_is_padded_and_agrees_with_unpadded(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    cal = [torch.randn(8, 3, 16, 16) for _ in range(4)]
    fp32 = export_onnx(model, cal[0], tmp_path / "m.onnx")
    on = quantize_static_onnx(fp32, tmp_path / "on.onnx", cal)
    off = quantize_static_onnx(fp32, tmp_path / "off.onnx", cal, pad_input_channels=None)
    assert op_counts(on).get("Pad", 0) == 1 and op_counts(off).get("Pad", 0) == 0
    x = torch.randn(32, 3, 16, 16)
    a, b = OrtModule(on, threads=1)(x), OrtModule(off, threads=1)(x)
    # same quantization grid (zero channels add exact zeros): the two int8 models agree closely
    assert float((a.argmax(1) == b.argmax(1)).float().mean()) >= 0.95
    assert np.allclose(a.numpy(), b.numpy(), atol=0.1 * float(b.abs().max()))
