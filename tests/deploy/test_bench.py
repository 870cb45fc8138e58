"""Backend benchmark: row keys, output check, failed backends reported, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from leandl.deploy import ROW_KEYS, Backend, BuiltBackend, bench_backends
from leandl.registry import BACKENDS


@BACKENDS.register("test-broken")
class BrokenBackend(Backend):
    """A backend that cannot build (for the failure-report test)."""

    name = "test-broken"

    def build(self, model, example_inputs, calibration, workdir: Path) -> BuiltBackend:
        raise RuntimeError("cannot lower op aten::frobnicate")


@BACKENDS.register("test-small-batches")
class SmallBatchBackend(Backend):
    """Eager, but its runtime rejects batches above 4 (a failure at timing time)."""

    name = "test-small-batches"

    def build(self, model, example_inputs, calibration, workdir: Path) -> BuiltBackend:
        def make(threads):
            def run(x):
                if x.shape[0] > 4:
                    raise ValueError(f"batch {x.shape[0]} > 4 not supported")
                return model(x)
            return run
        return BuiltBackend(self.name, 0, make)


def test_a_batch_size_a_backend_rejects_fails_only_that_row(trained_digits_cnn, digits) -> None:
    x = torch.stack([digits.test[i][0] for i in range(4)])
    rows = bench_backends(trained_digits_cnn, ["eager", "test-small-batches"], x, batch_sizes=(2, 8),
                          threads=(1,), warmup=1, repeats=4)
    by = {(r["backend"], r["batch_size"]): r for r in rows}
    assert by[("test-small-batches", 8)]["status"].startswith("failed: ValueError: batch 8 > 4")
    assert by[("test-small-batches", 2)]["status"] == "ok"
    assert by[("eager", 8)]["status"] == "ok" and by[("eager", 2)]["status"] == "ok"
    # both ran in the same interleaved rounds at batch 2: 2 rounds x 2 timed calls each
    assert by[("eager", 2)]["latency_ms"] > 0 and by[("test-small-batches", 2)]["latency_ms"] > 0


def test_rows_have_keys_and_outputs_are_checked(trained_digits_cnn, digits) -> None:
    x = torch.stack([digits.test[i][0] for i in range(32)])
    cal = [torch.stack([digits.train[i][0] for i in range(32)])]
    rows = bench_backends(trained_digits_cnn, ["eager", "onnxruntime", "onnxruntime-int8", "test-broken"], x,
                          batch_sizes=(1, 8), threads=(1,), calibration=cal, warmup=1, repeats=2)
    assert len(rows) == 8
    assert all(set(ROW_KEYS) <= set(r) for r in rows)
    by = {(r["backend"], r["batch_size"]): r for r in rows}
    assert by[("eager", 8)]["max_abs_diff"] == 0.0 and by[("eager", 8)]["top1_agreement"] == 1.0
    assert by[("onnxruntime", 1)]["max_abs_diff"] < 1e-4
    assert by[("onnxruntime-int8", 8)]["top1_agreement"] >= 0.9
    assert by[("onnxruntime-int8", 8)]["size_bytes"] < by[("onnxruntime", 8)]["size_bytes"]
    for r in rows:
        if r["backend"] == "test-broken":
            assert r["status"].startswith("failed: RuntimeError: cannot lower op")
            assert r["latency_ms"] is None
        else:
            assert r["status"] == "ok" and r["latency_ms"] > 0 and r["throughput"] > 0
            assert r["p90_ms"] >= r["latency_ms"]
    json.dumps(rows)  # JSON-safe


def test_unknown_backend_in_library_call_is_a_failed_row(trained_digits_cnn) -> None:
    rows = bench_backends(trained_digits_cnn, ["no-such"], torch.randn(4, 1, 8, 8), batch_sizes=(2,),
                          threads=(1,), warmup=0, repeats=1)
    assert rows[0]["status"].startswith("failed: UsageError")


def test_cli_bench_json_and_export(tmp_path, trained_digits_cnn, capsys) -> None:
    from leandl.checkpoint import save
    from leandl.cli import main

    ckpt = save(trained_digits_cnn, tmp_path / "ckpt")
    code = main(["bench", str(ckpt), "--backends", "eager,onnxruntime,test-broken", "--batch-sizes", "1,4",
                 "--threads", "1", "--repeats", "2", "--warmup", "1", "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and all(set(ROW_KEYS) <= set(r) for r in rows)
    assert {r["status"] for r in rows if r["backend"] == "test-broken"} != {"ok"}
    code = main(["bench", str(ckpt), "--backends", "eagr"])
    assert code == 2
    assert "did you mean 'eager'" in capsys.readouterr().err
    code = main(["export", str(ckpt), "--int8", "--data", "digits", "--calibration-batches", "2",
                 "--out", str(tmp_path / "out" / "m.onnx"), "--json"])
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["max_abs_diff"] < 1e-4 and info["int8_top1_agreement"] >= 0.9
    assert (tmp_path / "out" / "m.int8.onnx").is_file() and info["size_ratio"] > 1.5


def test_cli_export_int8_of_a_qat_checkpoint(tmp_path, trained_digits_cnn, digits, capsys) -> None:
    import copy

    from leandl.checkpoint import save
    from leandl.cli import main
    from leandl.quantize.qat import prepare_qat

    x = torch.stack([digits.train[i][0] for i in range(64)])
    qat = prepare_qat(copy.deepcopy(trained_digits_cnn), x).eval()
    ckpt = save(qat, tmp_path / "qat")
    code = main(["export", str(ckpt), "--int8", "--data", "digits", "--calibration-batches", "2",
                 "--out", str(tmp_path / "q.onnx"), "--json"])
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert "float twin" in info["fp32_file"]
    assert info["int8_top1_agreement"] >= 0.95 and info["size_ratio"] > 2


def test_channels_last_backend_matches_eager(trained_digits_cnn, digits) -> None:
    x = torch.stack([digits.test[i][0] for i in range(16)])
    rows = bench_backends(trained_digits_cnn, ["eager", "eager-channels-last"], x, batch_sizes=(16,),
                          threads=(1,), warmup=1, repeats=2)
    cl = next(r for r in rows if r["backend"] == "eager-channels-last")
    assert cl["status"] == "ok" and cl["max_abs_diff"] < 1e-5 and cl["top1_agreement"] == 1.0
