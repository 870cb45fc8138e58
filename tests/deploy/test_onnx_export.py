"""ONNX export: equality with eager, dynamic batch, batch-1 examples, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.deploy import OrtModule, check_onnx, compare_outputs, export_onnx
from leandl.errors import UsageError
from leandl.models import create_model


def test_export_matches_eager_at_any_batch(tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("digits_cnn", num_classes=10, input_shape=(1, 8, 8), width=8).eval()
    path = export_onnx(model, torch.randn(1, 1, 8, 8), tmp_path / "m.onnx")  # batch 1 is repeated to 2
    for batch in (1, 5, 64):
        x = torch.randn(batch, 1, 8, 8)
        check = check_onnx(model, path, x, threads=1)
        assert check.batch_size == batch
        assert check.max_abs_diff < 1e-4
        assert check.top1_agreement == 1.0


def test_export_restores_training_flag_and_reads_like_a_model(tmp_path) -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5))
    model.train()
    path = export_onnx(model, torch.randn(2, 4), tmp_path / "lin.onnx")
    assert model.training
    x = torch.randn(3, 4)
    ort_model = OrtModule(path, threads=1)
    torch.testing.assert_close(ort_model(x), model.eval()(x), atol=1e-5, rtol=1e-5)
    opts = ort_model.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    # workers spin within a run but must stop when it returns, not steal the cores from what runs next
    assert opts.get_session_config_entry("session.force_spinning_stop") == "1"


def test_ort_workers_stop_spinning_after_a_run(tmp_path) -> None:
    import time

    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    x = torch.randn(8, 3, 32, 32)
    run = OrtModule(export_onnx(model, x, tmp_path / "c.onnx"), threads=2)
    run(x), run(x)
    before = time.process_time()
    time.sleep(0.2)
    idle_cpu_ms = (time.process_time() - before) * 1000
    # with spinning left on after run() this process burned ~60 ms of CPU in the 200 ms sleep
    assert idle_cpu_ms < 20, f"{idle_cpu_ms:.1f} ms of CPU while idle: ORT workers kept spinning"


def test_compare_outputs_hand_case() -> None:
    ref = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    got = torch.tensor([[0.9, 0.0], [0.6, 0.5], [2.0, 1.25]])
    res = compare_outputs(ref, got)
    assert res.max_abs_diff == pytest.approx(0.6)
    assert res.top1_agreement == pytest.approx(2 / 3)


def test_bad_opset_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(UsageError, match="opset"):
        export_onnx(nn.Linear(2, 2), torch.randn(2, 2), tmp_path / "x.onnx", opset=11)
