"""OpenVINO backends: the int8 QDQ file run by OpenVINO keeps the model's accuracy and agrees with
ONNX Runtime on the same file; several inputs, integer ids and dict outputs; skipped without it."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from leandl.data import make_loader
from leandl.deploy import OrtModule, bench_backends, calibration_batches
from leandl.registry import BACKENDS


def test_openvino_int8_keeps_accuracy_and_agrees_with_onnxruntime_on_the_same_file(
        tmp_path, trained_digits_cnn, digits) -> None:
    pytest.importorskip("openvino")
    cal = calibration_batches(digits.train, 4, 32)
    built = BACKENDS.get("openvino-int8")().build(trained_digits_cnn, cal[0], cal, tmp_path)
    assert built.artifact.name == "model.int8.onnx" and built.size_bytes > 0
    run, ort = built.runner(1), OrtModule(built.artifact, threads=1)
    correct = eager_correct = n = 0
    for x, y, *_ in make_loader(digits.test, 128, shuffle=False):
        ov_logits = run(x)
        assert float(torch.nn.functional.cosine_similarity(ov_logits, ort(x)).min()) > 0.99
        with torch.no_grad():
            eager_correct += int((trained_digits_cnn(x).argmax(1) == y).sum())
        correct += int((ov_logits.argmax(1) == y).sum())
        n += len(y)
    assert correct / n >= eager_correct / n - 0.02  # int8 keeps the fp32 accuracy
    assert len(run._compiled) == 2  # one compiled model per input shape: 128 and the last batch


class _TokenModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.emb(input_ids) * attention_mask.unsqueeze(-1).float()
        return {"logits": self.out(h.mean(1)), "hidden": h}


def test_openvino_takes_token_ids_and_keyword_inputs_and_returns_every_output(tmp_path) -> None:
    pytest.importorskip("openvino")
    torch.manual_seed(0)
    model = _TokenModel().eval()
    ids = torch.randint(0, 50, (3, 7))
    example = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    built = BACKENDS.get("openvino")().build(model, example, [], tmp_path)
    out = built.runner(1)(input_ids=ids, attention_mask=torch.ones_like(ids))
    with torch.no_grad():
        ref = model(**example)
    assert isinstance(out, dict) and len(out) == 2
    got = sorted(out.values(), key=lambda t: t.dim())
    assert torch.allclose(got[0], ref["logits"], atol=1e-5) and torch.allclose(got[1], ref["hidden"], atol=1e-5)


def test_openvino_backends_are_skipped_with_the_reason_when_it_is_missing(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    net = nn.Sequential(nn.Linear(6, 3)).eval()
    rows = bench_backends(net, ["eager", "openvino", "openvino-int8"], torch.randn(4, 6), batch_sizes=(2,),
                          threads=(1,), warmup=0, repeats=2, calibration=[torch.randn(4, 6)])
    by = {r["backend"]: r for r in rows}
    assert by["eager"]["status"] == "ok"
    for name in ("openvino", "openvino-int8"):
        assert by[name]["status"] == "skipped: openvino is not installed (pip install openvino; 2026.4 was checked)"


def test_openvino_int8_built_with_onnxruntime_int8_runs_its_file_without_quantizing_again(tmp_path, monkeypatch) -> None:
    pytest.importorskip("openvino")
    import leandl.deploy.backends_ort as bo
    from leandl.deploy.bench import build_backends

    calls = []
    real = bo.ptq_onnx

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(bo, "ptq_onnx", counted)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4)).eval()
    cal = [torch.randn(4, 3, 8, 8) for _ in range(2)]
    built, failed = build_backends(net, ["onnxruntime-int8", "openvino-int8"], cal[0], cal, tmp_path)
    assert not failed
    assert len(calls) == 1  # quantized once, for onnxruntime-int8
    assert built["openvino-int8"].artifact == built["onnxruntime-int8"].artifact
    x = torch.randn(5, 3, 8, 8)
    a, b = built["openvino-int8"].runner(1)(x), built["onnxruntime-int8"].runner(1)(x)
    assert float(torch.nn.functional.cosine_similarity(a, b).min()) > 0.999
