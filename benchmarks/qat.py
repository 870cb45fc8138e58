"""QAT on digits_cnn (digits): fp32, then QAT fine-tuning at W8A8, W4A4 and W2A8 (first/last 8-bit).

Protocol (per seed): train fp32 from scratch (Adam, cosine), then for each bit setting copy the
fp32 model and fine-tune it with the ``qat`` technique (BN folded, LSQ weights per-channel and
activations per-tensor, first and last layer at 8 bits) for ``--qat-epochs`` at a 0.25x LR.
Test accuracy of the fake-quant model; the W8A8 model is also exported to int8 QDQ ONNX and run
with ONNX Runtime, reporting top-1 agreement with the fake-quant model on the test set.
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
from leandl.quantize.export import export_int8_onnx, run_onnx  # noqa: E402
from leandl.quantize.qat import QAT  # noqa: E402
from _train import fit  # noqa: E402
from leandl.train import evaluate, predict_logits  # noqa: E402

SETTINGS = {"fp32": None, "W8A8": (8, 8), "W4A4": (4, 4), "W2A8": (2, 8)}


def onnx_agreement(model, data) -> float:
    loader = make_loader(data.test, 1024, shuffle=False, seed=0, epoch=0)
    xs = torch.cat([b[0] for b in loader])
    with torch.no_grad():
        ref = model(xs).argmax(1).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_int8_onnx(model, xs[:1], Path(tmp) / "m.onnx")
        out = run_onnx(path, xs).argmax(1)
    return float((out == ref).mean())


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
        if name == "W8A8":
            res["onnx_agree"] = onnx_agreement(m, data)
    return res


def main() -> None:
    p = base_parser("qat", __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--qat-epochs", type=int, default=10)
    a = p.parse_args()
    epochs, qat_epochs, seeds = (4, 2, 1) if a.quick else (a.epochs, a.qat_epochs, a.seeds)
    runs = [run_seed(s, epochs, qat_epochs) for s in range(seeds)]
    rows = [row(k, "test_accuracy", [100 * r[k] for r in runs], units="%", dataset="digits",
                model="digits_cnn", protocol=f"fp32 {epochs} ep then QAT fine-tune {qat_epochs} ep")
            for k in SETTINGS]
    for k in list(SETTINGS)[1:]:
        rows.append(row(k, "drop_vs_fp32", [100 * (r["fp32"] - r[k]) for r in runs], units="points"))
    rows.append(row("W8A8 int8 ONNX (ORT)", "top1_agreement_with_fake_quant",
                    [100 * r["onnx_agree"] for r in runs], units="%"))
    print_table(rows, "QAT on digits_cnn")
    write_rows(rows, a.out, "qat")


if __name__ == "__main__":
    main()
