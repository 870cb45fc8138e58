"""select_backend: the fastest backend within tolerance wins; inaccurate ones are never chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")

from leandl.deploy import Backend, BuiltBackend  # noqa: E402
from leandl.deploy.select import (_choose, conv_mac_share, eligible_backends, format_selection,  # noqa: E402
                                  select_backend, write_deployment)
from leandl.registry import BACKENDS  # noqa: E402


@BACKENDS.register("test-fast-wrong")
class FastWrongBackend(Backend):
    """Answers instantly with the same class for every sample: fastest, and inaccurate."""

    name = "test-fast-wrong"

    def build(self, model, example_inputs, calibration, workdir: Path) -> BuiltBackend:
        n = model(example_inputs[:1]).shape[-1]

        def run(x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(x.shape[0], n)
            out[:, 0] = 1.0
            return out

        return BuiltBackend(self.name, 1, lambda threads: run)


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 10)).eval()


def test_choose_takes_the_lowest_geometric_mean_latency_ratio_by_hand() -> None:
    # speed-ups vs eager at two settings: a = 4x and 1x (geo mean 2x), b = 2.5x and 2.5x (2.5x) -> b
    rows = [{"backend": n, "batch_size": bs, "threads": 1, "status": "ok", "speedup_vs_eager": s}
            for n, bs, s in [("eager", 1, 1.0), ("eager", 64, 1.0), ("a", 1, 4.0), ("a", 64, 1.0),
                             ("b", 1, 2.5), ("b", 64, 2.5), ("c", 1, 9.0)]]
    # c did not run at batch 64: it cannot be deployed for every setting asked for
    rows.append({"backend": "c", "batch_size": 64, "threads": 1, "status": "failed: x", "speedup_vs_eager": None})
    assert _choose(rows, ["eager", "a", "b", "c"]) == "b"


def test_an_inaccurate_fast_backend_is_never_chosen(trained_digits_cnn, digits, tmp_path) -> None:
    x = torch.stack([digits.test[i][0] for i in range(128)]).float()
    y = torch.tensor([int(digits.test[i][1]) for i in range(128)])
    cal = [torch.stack([digits.train[i][0] for i in range(j * 32, j * 32 + 32)]).float() for j in range(2)]
    sel = select_backend(trained_digits_cnn, x, labels=y, calibration=cal,
                         backends=["eager", "onnxruntime", "onnxruntime-int8", "test-fast-wrong"],
                         batch_sizes=(8,), threads=(1,), warmup=1, repeats=4, workdir=tmp_path / "w")
    assert sel.reference_accuracy is not None and sel.reference_accuracy > 0.8
    assert sel.tolerance == {"max_accuracy_drop": 0.01}
    assert sel.skipped["test-fast-wrong"].startswith("out of tolerance: accuracy")
    assert sel.backend in {"eager", "onnxruntime", "onnxruntime-int8"}
    timed = {r["backend"] for r in sel.rows}
    assert timed == {"eager", "onnxruntime", "onnxruntime-int8"}
    for r in sel.rows:
        assert r["status"] == "ok" and r["accuracy"] >= sel.reference_accuracy - 0.01
    # the winner per setting is the row with the lowest median
    best = min(sel.rows, key=lambda r: r["latency_ms"])
    assert sel.best == [{"batch_size": 8, "threads": 1, "backend": best["backend"], "latency_ms": best["latency_ms"],
                         "speedup_vs_eager": best["speedup_vs_eager"]}]
    doc = write_deployment(sel, tmp_path / "out", model=trained_digits_cnn)
    assert (tmp_path / "out" / "deploy.json").is_file() and (tmp_path / "out" / doc["artifact"]).exists()
    text = format_selection(sel)
    assert "not deployed: test-fast-wrong: out of tolerance" in text and f"chosen: {sel.backend}" in text


def test_without_labels_the_cosine_rule_applies() -> None:
    model = _mlp()
    sel = select_backend(model, torch.randn(16, 1, 8, 8), backends=["eager", "test-fast-wrong"],
                         batch_sizes=(4,), threads=(1,), warmup=0, repeats=2, min_cosine=0.99)
    assert sel.tolerance == {"min_cosine": 0.99} and sel.reference_accuracy is None
    assert sel.skipped["test-fast-wrong"].startswith("out of tolerance: cosine")
    assert sel.backend == "eager" and sel.artifact is None


def test_eligibility_dynamic_int8_for_linear_models_channels_last_for_cnns(trained_digits_cnn) -> None:
    x = torch.randn(4, 1, 8, 8)
    assert conv_mac_share(_mlp(), x) == 0.0
    names, skipped = eligible_backends(_mlp(), x, include_slow=False)
    assert "onnxruntime-dynamic-int8" in names and "eager-channels-last" in skipped
    assert "compile" in skipped and "compile" not in names
    cnn_share = conv_mac_share(trained_digits_cnn, x)
    assert cnn_share > 0.5
    names, skipped = eligible_backends(trained_digits_cnn, x, include_slow=False)
    assert "eager-channels-last" in names and "onnxruntime-int8" in names
    assert "MatMul/Gemm" in skipped["onnxruntime-dynamic-int8"]
    # token ids: no channels-last; the mask / ids model is Linear-heavy
    emb = torch.nn.Sequential(torch.nn.Embedding(50, 16), torch.nn.Flatten(), torch.nn.Linear(16 * 6, 3)).eval()
    names, skipped = eligible_backends(emb, torch.randint(0, 50, (2, 6)), include_slow=False)
    assert "onnxruntime-dynamic-int8" in names and "eager-channels-last" in skipped


def test_bad_tolerances_are_refused() -> None:
    with pytest.raises(ValueError, match="max_accuracy_drop"):
        select_backend(_mlp(), torch.randn(2, 1, 8, 8), max_accuracy_drop=5.0)
    with pytest.raises(ValueError, match="labels hold 3 values"):
        select_backend(_mlp(), torch.randn(2, 1, 8, 8), labels=torch.zeros(3, dtype=torch.long),
                       backends=["eager"], batch_sizes=(1,), threads=(1,))
