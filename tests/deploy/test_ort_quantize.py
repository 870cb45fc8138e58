"""ONNX Runtime int8: static accuracy on a trained model, dynamic restricted to MatMul/Gemm."""

from __future__ import annotations

import torch
from torch import nn

from leandl.data import make_loader
from leandl.deploy import calibration_batches, evaluate_onnx, op_counts, ptq_onnx
from leandl.deploy.calibration import TensorDataReader


def test_static_int8_keeps_accuracy_and_shrinks_the_file(tmp_path, trained_digits_cnn, digits) -> None:
    cal = calibration_batches(digits.train, 4, 32)
    res = ptq_onnx(trained_digits_cnn, cal[0], tmp_path, calibration=cal, calibrate_method="minmax")
    loader = make_loader(digits.test, 512, shuffle=False)
    fp32 = evaluate_onnx(res.fp32_path, loader, threads=1)["accuracy"]
    int8 = evaluate_onnx(res.int8_path, loader, threads=1)["accuracy"]
    assert fp32 > 0.85
    assert int8 >= fp32 - 0.02
    ops = op_counts(res.int8_path)
    assert ops.get("QuantizeLinear", 0) > 0 and ops.get("DequantizeLinear", 0) > 0
    assert res.size_ratio > 1.5  # tiny model: QDQ graph overhead keeps it below 4x
    assert res.bias_shifts  # bias correction ran on every conv/linear
    assert set(res.bias_shifts) >= {"head.fc"}


def test_dynamic_int8_never_makes_conv_integer(tmp_path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 16), nn.ReLU(),
                        nn.Linear(16, 10)).eval()
    res = ptq_onnx(net, torch.randn(2, 1, 8, 8), tmp_path, method="dynamic")
    ops = op_counts(res.int8_path)
    assert "ConvInteger" not in ops
    assert ops.get("Conv", 0) == 1  # the conv stays fp32
    assert ops.get("MatMulInteger", 0) + ops.get("DynamicQuantizeMatMul", 0) >= 1  # the linears are int8
    from leandl.deploy import OrtModule

    x = torch.randn(5, 1, 8, 8)
    diff = (OrtModule(res.int8_path, threads=1)(x) - net(x).detach()).abs().max()
    assert float(diff) < 0.05


def test_data_reader_feeds_every_batch_then_rewinds() -> None:
    reader = TensorDataReader([torch.ones(2, 3), torch.zeros(1, 3)], ["input"])
    shapes = []
    while (feed := reader.get_next()) is not None:
        shapes.append(feed["input"].shape)
    assert shapes == [(2, 3), (1, 3)]
    reader.rewind()
    assert reader.get_next()["input"].sum() == 6


def test_data_reader_per_sample_splits_each_batch_into_single_samples() -> None:
    reader = TensorDataReader([torch.ones(2, 3), torch.zeros(3, 3)], ["input"], per_sample=True)
    feeds = []
    while (feed := reader.get_next()) is not None:
        feeds.append(feed["input"])
    assert [f.shape for f in feeds] == [(1, 3)] * 5
    assert [float(f.sum()) for f in feeds] == [3.0, 3.0, 0.0, 0.0, 0.0]
    reader.rewind()
    assert reader.get_next()["input"].shape == (1, 3)
    # inputs that disagree on their first size are not one batch of samples: fed whole
    mixed = TensorDataReader([{"a": torch.ones(2, 3), "b": torch.ones(4)}], ["a", "b"], per_sample=True)
    assert mixed.get_next()["a"].shape == (2, 3) and mixed.get_next() is None


def test_per_sample_minmax_calibration_gives_the_same_scales(tmp_path) -> None:
    """Feeding the calibration batches one sample at a time (what leandl does for models past 2 GB,
    to bound memory) must not change a single MinMax range: every scale and zero point equal."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from leandl.deploy import export_onnx

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(),
                        nn.Linear(8 * 6 * 6, 10)).eval()
    fp32 = export_onnx(net, torch.randn(2, 3, 8, 8), tmp_path / "f.onnx")
    cal = [torch.randn(4, 3, 8, 8) * (i + 1) for i in range(3)]
    scales = {}
    for per_sample in (False, True):
        out = tmp_path / f"q{per_sample}.onnx"
        quantize_static(str(fp32), str(out), TensorDataReader(cal, ["input"], per_sample=per_sample),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        scales[per_sample] = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer
                              if t.name.endswith(("_scale", "_zero_point"))}
    assert len(scales[False]) >= 8 and scales[False].keys() == scales[True].keys()
    for name, value in scales[False].items():
        assert np.array_equal(value, scales[True][name]), name


def test_static_int8_op_types_auto_rule_by_hand(tmp_path) -> None:
    """``op_types="auto"``: weight ops only when MatMul/Gemm nodes outnumber Conv nodes."""
    import onnx
    from onnx import helper

    from leandl.deploy.ort_quantize import WEIGHT_OP_TYPES, _op_types

    def graph(ops: list[str]) -> onnx.ModelProto:
        nodes = [helper.make_node(op, ["a", "b"], [f"o{i}"]) for i, op in enumerate(ops)]
        return helper.make_model(helper.make_graph(nodes, "g", [], []))

    assert _op_types(graph(["MatMul", "MatMul", "Conv"]), "auto") == WEIGHT_OP_TYPES
    assert _op_types(graph(["Conv", "Conv", "Gemm"]), "auto") is None
    assert _op_types(graph(["Conv", "Gemm"]), "auto") is None  # a tie is a CNN with its head
    assert _op_types(graph(["MatMul"]), ["Conv"]) == ["Conv"]  # an explicit list wins


def test_static_int8_of_a_llama_keeps_its_outputs(tmp_path) -> None:
    """Quantizing every float op of a LLaMA (RMSNorm, rotary) gave cosine 0.49 to fp32 on the zoo's
    random-init model; with the weight ops only the int8 file stays close to eager."""
    import pytest

    transformers = pytest.importorskip("transformers")
    from leandl.deploy import check_onnx

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=100, max_position_embeddings=32, use_cache=False)
    model = transformers.LlamaModel(cfg).eval()
    g = torch.Generator().manual_seed(1)

    def batch(n: int) -> dict[str, torch.Tensor]:
        ids = torch.randint(0, 100, (n, 16), generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    res = ptq_onnx(model, batch(2), tmp_path, calibration=[batch(4) for _ in range(4)])
    assert res.op_types == "MatMul, Gemm, Conv"
    check = check_onnx(model, res.int8_path, batch(8))
    assert check.outputs["last_hidden_state"]["cosine"] >= 0.99


def test_dynamic_int8_uses_per_column_weight_scales_by_default(tmp_path) -> None:
    """Columns of very different magnitude (trained transformers have them; random init does
    not): one per-tensor scale rounds the small columns to a few levels, per-column scales keep
    them. The default is per column."""
    from leandl.deploy import OrtModule, export_onnx, quantize_dynamic_onnx

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 16, bias=False)).eval()
    with torch.no_grad():
        net[0].weight[0] *= 200.0  # one output column 200x the others
    x = torch.randn(64, 32)
    fp32 = export_onnx(net, x, tmp_path / "fp32.onnx")
    with torch.no_grad():
        ref = net(x)[:, 1:]  # the ordinary columns

    def err(path) -> float:
        got = OrtModule(path, threads=1)(x)[:, 1:]
        return float((got - ref).abs().max() / ref.abs().max())

    tensor = err(quantize_dynamic_onnx(fp32, tmp_path / "t.onnx", per_channel=False))
    default = err(quantize_dynamic_onnx(fp32, tmp_path / "d.onnx"))
    # per-tensor: step = 200 * |w|max / 127, larger than the small columns' own weights
    assert tensor > 0.3
    assert default < 0.02  # int8 error of an ordinary column with its own scale


def test_static_int8_keep_float_leaves_the_named_node_unquantized(tmp_path) -> None:
    import onnx
    import pytest

    from leandl.deploy import export_onnx
    from leandl.deploy.ort_quantize import quantize_static_onnx
    from leandl.errors import ConfigError

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    xs = [torch.randn(16, 8) for _ in range(3)]
    fp32 = export_onnx(net, xs[0], tmp_path / "fp32.onnx")
    weight_ops = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type in ("Gemm", "MatMul")]
    assert len(weight_ops) == 3
    keep = weight_ops[1]

    def dequantized_inputs(path) -> list[int]:
        """Per weight op, in graph order (the written file's node names are compacted)."""
        g = onnx.load(str(path)).graph
        made_by = {o: n.op_type for n in g.node for o in n.output}
        return [sum(made_by.get(i) == "DequantizeLinear" for i in n.input)
                for n in g.node if n.op_type in ("Gemm", "MatMul")]

    all_q = dequantized_inputs(quantize_static_onnx(fp32, tmp_path / "a.onnx", xs))
    kept = dequantized_inputs(quantize_static_onnx(fp32, tmp_path / "k.onnx", xs, keep_float=[keep]))
    assert all_q == [3, 3, 3]  # input, weight and bias dequantized: int8 ops
    assert kept[1] == 0 and kept[0] >= 2 and kept[2] >= 2
    with pytest.raises(ConfigError, match="no_such_node"):
        quantize_static_onnx(fp32, tmp_path / "x.onnx", xs, keep_float=["no_such_node"])


def test_int8_of_a_model_stored_with_external_data_is_one_runnable_file(tmp_path) -> None:
    """Models past protobuf's 2 GB limit are exported with external data files (torchvision's
    regnet_y_128gf, vit_h_14); quantization must read them and write the int8 model as one file.
    A small model saved in the same layout exercises that path."""
    import onnx

    from leandl.deploy import OrtModule, export_onnx, quantize_dynamic_onnx
    from leandl.deploy.ort_quantize import quantize_static_onnx, uses_external_data

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4)).eval()
    xs = [torch.randn(16, 8) for _ in range(3)]
    plain = export_onnx(net, xs[0], tmp_path / "plain.onnx")
    ext_dir = tmp_path / "ext"
    ext_dir.mkdir()
    onnx.save(onnx.load(str(plain)), str(ext_dir / "model.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    assert uses_external_data(ext_dir / "model.onnx") and not uses_external_data(plain)
    from leandl.deploy.ort_quantize import onnx_file_bytes

    data = (ext_dir / "model.onnx.data").stat().st_size
    assert data > 4 * (8 * 64 + 64 * 4)  # the weights live in the data file
    assert onnx_file_bytes(ext_dir / "model.onnx") == (ext_dir / "model.onnx").stat().st_size + data
    assert onnx_file_bytes(plain) == plain.stat().st_size
    with torch.no_grad():
        ref = net(xs[0])
    for path in (quantize_static_onnx(ext_dir / "model.onnx", tmp_path / "s.onnx", xs),
                 quantize_dynamic_onnx(ext_dir / "model.onnx", tmp_path / "d.onnx")):
        assert not uses_external_data(path)
        assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.stem)) == [path.name]
        got = OrtModule(path, threads=1)(xs[0])
        assert torch.nn.functional.cosine_similarity(got.flatten(), ref.flatten(), dim=0) > 0.99
