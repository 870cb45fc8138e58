"""Every exported ONNX file is run by ONNX Runtime before it is reported; failures name the op."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from leandl.deploy import check_onnx, export_onnx, validate_onnx  # noqa: E402
from leandl.deploy import onnx_export  # noqa: E402
from leandl.deploy.onnx_export import ort_op_of  # noqa: E402
from leandl.errors import ModelError  # noqa: E402


def _bad_model(path: Path, domain: str = "com.example") -> Path:
    """A graph ONNX Runtime refuses to load: an op no runtime registers."""
    from onnx import TensorProto, helper

    node = helper.make_node("Frobnicate", ["input"], ["logits"], domain=domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["b", 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 4])])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def test_ort_messages_name_the_op() -> None:
    assert ort_op_of("Load model from m.onnx failed:Fatal error: com.example:Frobnicate(-1) is not a registered "
                     "function/op") == "com.example:Frobnicate"
    assert ort_op_of("Non-zero status code returned while running Reshape node. Name:'/h.0/Reshape' Status") == \
        "Reshape (node '/h.0/Reshape')"
    assert ort_op_of('This is an invalid model. In Node, ("n1", Trilu, "", -1) : x') == "Trilu (node 'n1')"
    assert ort_op_of("Could not find an implementation for Trilu(14) node with name 'tri'") == "Trilu (node 'tri')"
    assert ort_op_of("something else") is None


def test_validate_rejects_a_file_ort_cannot_load(tmp_path) -> None:
    path = _bad_model(tmp_path / "bad.onnx")
    with pytest.raises(ModelError, match="Frobnicate"):
        validate_onnx(path, torch.randn(2, 4))


def test_export_whose_file_ort_rejects_is_an_error_naming_the_op(tmp_path, monkeypatch) -> None:
    def writes_bad_file(model, args, path, *rest) -> None:  # an exporter that "succeeds"
        _bad_model(Path(path))

    monkeypatch.setattr(onnx_export, "_export_legacy", writes_bad_file)
    with pytest.raises(ModelError) as info:
        export_onnx(nn.Linear(4, 4), torch.randn(2, 4), tmp_path / "m.onnx", exporter="legacy")
    assert "ONNX Runtime cannot run the exported file at op com.example:Frobnicate" in str(info.value)
    assert not (tmp_path / "m.onnx").exists()  # never left behind as if written


def test_tiny_gpt2_exports_and_runs(tmp_path) -> None:
    from leandl._compat_torchvision import import_torchvision

    import_torchvision()
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                  bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    gpt = transformers.GPT2Model(cfg).eval()
    ids = torch.randint(0, 100, (2, 16))
    path = export_onnx(gpt, ids, tmp_path / "gpt.onnx")  # the key/value cache object is not an output
    res = check_onnx(gpt, path, torch.randint(0, 100, (3, 20)))
    assert list(res.outputs) == ["last_hidden_state"] and res.max_abs_diff < 1e-4
