"""``leandl bench --quick``: a first look in seconds; median, p90 and the noise flag are shown."""

from __future__ import annotations

import json
import time

import pytest
import torch

pytest.importorskip("onnxruntime")

from leandl.checkpoint import save  # noqa: E402
from leandl.cli import main  # noqa: E402
from leandl.deploy import ROW_KEYS  # noqa: E402
from leandl.models import create_model  # noqa: E402


@pytest.fixture()
def ckpt(tmp_path):
    torch.manual_seed(0)
    return save(create_model("digits_cnn", num_classes=10, input_shape=(1, 8, 8), width=8).eval(), tmp_path / "c")


def test_quick_with_real_data_finishes_fast(ckpt, tmp_path, capsys) -> None:
    start = time.perf_counter()
    code = main(["bench", str(ckpt), "--quick", "--data", "digits", "--json", "--out", str(tmp_path / "rows.json")])
    elapsed = time.perf_counter() - start
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    print(f"leandl bench --quick on digits_cnn: {elapsed:.1f} s")
    assert elapsed < 20.0
    assert {r["backend"] for r in rows} == {"eager", "onnxruntime", "onnxruntime-int8"}
    assert {r["threads"] for r in rows} == {1} and {r["batch_size"] for r in rows} == {1, 64}
    assert all(set(ROW_KEYS) <= set(r) and r["status"] == "ok" for r in rows)
    assert all(isinstance(r["noisy"], bool) and r["p90_ms"] >= r["latency_ms"] for r in rows)
    assert {r["calibration"] for r in rows} == {"data digits"}
    assert json.loads((tmp_path / "rows.json").read_text()) == rows


def test_quick_table_shows_median_p90_and_skips_uncalibrated_int8(ckpt, capsys) -> None:
    code = main(["bench", str(ckpt), "--quick", "--batch-sizes", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "median ms" in out and "p90 ms" in out and "calibration none" in out
    int8 = next(line for line in out.splitlines() if line.startswith("onnxruntime-int8"))
    assert "skipped: static int8 needs calibration batches" in int8 and "--random-calibration" in int8
    assert "failed" not in out
