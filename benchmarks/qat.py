"""QAT on digits_cnn (digits): fp32, then QAT fine-tuning at W8A8, W4A4 and W2A8, and its int8 deployment.

Part A, protocol (per seed): train fp32 from scratch (Adam, cosine), then for each bit setting
copy the fp32 model and fine-tune it with the ``qat`` technique (BN folded, LSQ weights
per-channel and activations per-tensor, first and last layer at 8 bits) for ``--qat-epochs`` at
a 0.25x LR. Test accuracy of the fake-quant model. Each QAT model is then deployed as int8 ONNX
the way ``leandl export --int8`` does it (``ptq_onnx``: float twin, static int8 calibrated on 8
training batches), run with ONNX Runtime: its test accuracy and top-1 agreement with the
fake-quant model. The W8A8 model is also exported as the exact fake-quant QDQ graph
(``export_int8_onnx``): its agreement.

Part B, speed and size (ResNet-56, 32x32, batch 64, ``--threads`` threads, random weights, W8A8
QAT layers): ONNX Runtime fp32 (the float model), the exact QDQ graph and the int8 deployment,
timed in ``--rounds`` interleaved rounds (``compare_latency``), and the three file sizes.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

from leandl.data import load_data, make_loader  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.deploy import OrtModule, calibration_batches, export_onnx, ptq_onnx  # noqa: E402
from leandl.measure import compare_latency  # noqa: E402
from leandl.quantize.export import export_int8_onnx, run_onnx  # noqa: E402
from leandl.quantize.qat import prepare_qat  # noqa: E402
from leandl.quantize.qat import QAT  # noqa: E402
from _train import fit  # noqa: E402
from leandl.train import evaluate, predict_logits  # noqa: E402

SETTINGS = {"fp32": None, "W8A8": (8, 8), "W4A4": (4, 4), "W2A8": (2, 8)}


def _test_arrays(data) -> tuple[torch.Tensor, torch.Tensor]:
    loader = make_loader(data.test, 1024, shuffle=False, seed=0, epoch=0)
    return torch.cat([b[0] for b in loader]), torch.cat([b[1] for b in loader])


def onnx_agreement(model, data) -> float:
    """Top-1 agreement of the exact fake-quant QDQ graph with the fake-quant model."""
    xs, _ = _test_arrays(data)
    with torch.no_grad():
        ref = model(xs).argmax(1).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_int8_onnx(model, xs[:1], Path(tmp) / "m.onnx")
        out = run_onnx(path, xs).argmax(1)
    return float((out == ref).mean())


def deploy_int8(model, data) -> tuple[float, float]:
    """(test accuracy, top-1 agreement with the fake-quant model) of the int8 deployment."""
    xs, ys = _test_arrays(data)
    with torch.no_grad():
        ref = model(xs).argmax(1).numpy()
    cal = calibration_batches(data.train, 8, 64, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        res = ptq_onnx(model, xs[:2], Path(tmp), calibration=cal)
        out = run_onnx(res.int8_path, xs).argmax(1)
    return float((out == ys.numpy()).mean()), float((out == ref).mean())


def speed_and_size(seed: int, rounds: int, threads: int, batch: int) -> dict[str, float]:
    """Part B: ORT fp32 vs exact QDQ vs int8 deployment of a W8A8 ResNet-56 (ms and bytes)."""
    torch.manual_seed(seed)
    fp = create_model("resnet56", num_classes=10).eval()
    x = torch.randn(batch, 3, 32, 32)
    q = prepare_qat(copy.deepcopy(fp), x[:32]).eval()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"ORT fp32": export_onnx(fp, x[:2], Path(tmp) / "fp32.onnx"),
                 "exact QDQ graph": export_int8_onnx(q, x[:1], Path(tmp) / "exact.onnx"),
                 "int8 deployment": ptq_onnx(q, x[:2], Path(tmp) / "deploy", calibration=[x[:32], x[32:]]).int8_path}
        fns = {k: OrtModule(p, threads=threads) for k, p in paths.items()}
        cmp = compare_latency(fns, x, rounds=rounds, warmup=1, repeats=2, threads=threads)
        out = {f"{k}|bytes": float(p.stat().st_size) for k, p in paths.items()}
    for k in paths:
        out[f"{k}|ms"] = cmp.median_ms[k]
        per_round = [a / b for a, b in zip(cmp.round_ms["ORT fp32"], cmp.round_ms[k])]
        out[f"{k}|speedup"] = sorted(per_round)[len(per_round) // 2]
    return out


def run_seed(seed: int, epochs: int, qat_epochs: int) -> dict[str, float]:
    data = load_data("digits", seed=seed)
    torch.manual_seed(seed)
    fp = create_model("digits_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    fit(fp, data, epochs, 3e-3, seed)
    test = make_loader(data.test, 1024, shuffle=False, seed=0, epoch=0)
    res = {"fp32": evaluate(fp, test)["accuracy"]}
    for name, bits in SETTINGS.items():
        if bits is None:
            continue
        m = copy.deepcopy(fp)
        fit(m, data, qat_epochs, 7.5e-4, seed, [QAT(weight_bits=bits[0], act_bits=bits[1])])
        res[name] = evaluate(m, test)["accuracy"]
        res[f"{name}|deploy_acc"], res[f"{name}|deploy_agree"] = deploy_int8(m, data)
        if name == "W8A8":
            res["onnx_agree"] = onnx_agreement(m, data)
    return res


def main() -> None:
    p = base_parser("qat", __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--qat-epochs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds (part B)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    a = p.parse_args()
    epochs, qat_epochs, seeds = (4, 2, 1) if a.quick else (a.epochs, a.qat_epochs, a.seeds)
    rounds = 3 if a.quick else a.rounds
    runs = [run_seed(s, epochs, qat_epochs) for s in range(seeds)]
    speed = [speed_and_size(s, rounds, a.threads, a.batch_size) for s in range(seeds)]
    rows = [row(k, "test_accuracy", [100 * r[k] for r in runs], units="%", dataset="digits",
                model="digits_cnn", protocol=f"fp32 {epochs} ep then QAT fine-tune {qat_epochs} ep")
            for k in SETTINGS]
    for k in list(SETTINGS)[1:]:
        rows.append(row(k, "drop_vs_fp32", [100 * (r["fp32"] - r[k]) for r in runs], units="points"))
    rows.append(row("W8A8 exact QDQ graph (ORT)", "top1_agreement_with_fake_quant",
                    [100 * r["onnx_agree"] for r in runs], units="%"))
    for k in list(SETTINGS)[1:]:
        rows.append(row(f"{k} int8 deployment (ORT)", "test_accuracy", [100 * r[f"{k}|deploy_acc"] for r in runs],
                        units="%", protocol="float twin, static int8, 8 calibration batches"))
        rows.append(row(f"{k} int8 deployment (ORT)", "top1_agreement_with_fake_quant",
                        [100 * r[f"{k}|deploy_agree"] for r in runs], units="%"))
    extra = {"model": "resnet56 W8A8 (random weights)", "batch_size": a.batch_size, "threads": a.threads,
             "rounds": rounds}
    for k in ("ORT fp32", "exact QDQ graph", "int8 deployment"):
        rows.append(row(k, "latency_ms", [s[f"{k}|ms"] for s in speed], units="ms per batch (median of rounds)",
                        **extra))
        rows.append(row(k, "speedup_vs_ort_fp32", [s[f"{k}|speedup"] for s in speed],
                        units="x, median per-round ratio", **extra))
        rows.append(row(k, "onnx_bytes", [s[f"{k}|bytes"] for s in speed], units="bytes", **extra))
    print_table(rows, "QAT on digits_cnn; its int8 deployment; ResNet-56 speed and size")
    write_rows(rows, a.out, "qat")


if __name__ == "__main__":
    main()
