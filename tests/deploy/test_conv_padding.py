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


class StdConvStem(nn.Module):
    """A stem whose weight is standardized in forward (as timm's NFNets do): after constant
    folding the weight is an initializer that also has a recorded shape in the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.conv.weight
        w = torch.nn.functional.batch_norm(w.reshape(1, 16, -1), None, None, training=True, momentum=0.0,
                                           eps=1e-5).reshape_as(w)
        return self.head(torch.nn.functional.conv2d(x, w, self.conv.bias, padding=1))


def test_standardized_stem_weight_is_padded_and_quantizes(tmp_path) -> None:
    torch.manual_seed(0)
    model = StdConvStem().eval()
    cal = [torch.randn(8, 3, 16, 16) for _ in range(2)]
    fp32 = export_onnx(model, cal[0], tmp_path / "m.onnx")
    info: dict = {}
    q = quantize_static_onnx(fp32, tmp_path / "q.onnx", cal, info=info)
    assert info["stem_padding"].startswith("padded 1 conv"), info
    assert op_counts(q).get("Pad", 0) == 1


def _inexact(model, multiple=4):
    """Pads, then breaks exactness: the extra input channel is filled with ones, not zeros."""
    import numpy as np
    from onnx import numpy_helper

    import leandl.deploy.conv_padding as cp

    names = cp._pad_input_convs_unchecked(model, multiple)
    model.graph.initializer.append(numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"))
    for node in model.graph.node:
        if node.op_type == "Pad":
            node.input.append("one")
    for init in model.graph.initializer:
        if init.name in names:
            w = numpy_helper.to_array(init).copy()
            w[:, -1] = 1.0
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    return names


def _raises(model, multiple=4):
    raise RuntimeError("graph too unusual")


@pytest.mark.parametrize("pad, reason", [(_inexact, "differs"), (_raises, "RuntimeError: graph too unusual")])
def test_padding_that_fails_or_is_not_exact_is_skipped_and_said(tmp_path, monkeypatch, pad, reason) -> None:
    import leandl.deploy.conv_padding as cp

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(16, 10)).eval()
    cal = [torch.randn(8, 3, 16, 16) for _ in range(2)]
    fp32 = export_onnx(model, cal[0], tmp_path / "m.onnx")
    monkeypatch.setattr(cp, "_pad_input_convs_unchecked", cp.pad_input_convs, raising=False)
    monkeypatch.setattr(cp, "pad_input_convs", pad)
    info: dict = {}
    with pytest.warns(UserWarning, match="stem padding skipped"):
        q = quantize_static_onnx(fp32, tmp_path / "q.onnx", cal, info=info)
    assert info["stem_padding"].startswith("skipped") and reason in info["stem_padding"]
    assert op_counts(q).get("Pad", 0) == 0
    got = OrtModule(q, threads=1)(cal[0])
    assert float((got.argmax(1) == model(cal[0]).argmax(1)).float().mean()) >= 0.75
