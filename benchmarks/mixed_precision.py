"""Mixed-precision weights vs uniform 4-bit / 2-bit on mnist1d_cnn (mnist1d), QAT fine-tuned.

Protocol (per seed): train fp32 (Adam, cosine). Budgets are 50 % and 25 % of the all-8-bit
weight size. Uniform baselines quantise every layer (first/last included) to 4 or 2 bits;
mixed precision picks per-layer bits from {1,2,3,4,6,8} by measured output-MSE sensitivity
on 512 training samples and an exact knapsack under the budget. Every variant is then
fine-tuned with the ``qat`` technique (LSQ, BN folded, 8-bit activations) for ``--qat-epochs``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

from leandl.data import load_data, make_loader  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.quantize.bn_fold import fold_model_bn  # noqa: E402
from leandl.quantize.mixed_precision import choose_bits, layer_weight_counts, weight_bytes  # noqa: E402
from leandl.quantize.qat import QAT  # noqa: E402
from _train import fit  # noqa: E402
from leandl.train import evaluate  # noqa: E402


def mp_bits(fp, data, fraction: float) -> dict[str, int]:
    folded = copy.deepcopy(fp).eval()
    fold_model_bn(folded)  # sensitivity of the weights QAT will quantise
    x = next(iter(make_loader(data.train, 512, shuffle=True, seed=0, epoch=0)))[0]
    bits, _ = choose_bits(folded, x, fraction)
    return bits


def run_seed(seed: int, epochs: int, qat_epochs: int) -> dict[str, tuple[float, float, dict]]:
    data = load_data("mnist1d", seed=seed)
    torch.manual_seed(seed)
    fp = create_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape)
    fit(fp, data, epochs, 3e-3, seed)
    test = make_loader(data.test, 1024, shuffle=False, seed=0, epoch=0)
    counts = layer_weight_counts(fp)
    names = list(counts)
    variants = {
        "uniform 8-bit": dict.fromkeys(names, 8),
        "uniform 4-bit": dict.fromkeys(names, 4),
        "mixed @50%": mp_bits(fp, data, 0.5),
        "uniform 2-bit": dict.fromkeys(names, 2),
        "mixed @25%": mp_bits(fp, data, 0.25),
    }
    out = {"fp32": (evaluate(fp, test)["accuracy"], 4.0 * sum(counts.values()), {})}
    for label, bits in variants.items():
        m = copy.deepcopy(fp)
        fit(m, data, qat_epochs, 7.5e-4, seed, [QAT(bits=bits, first_last_bits=None, act_bits=8)])
        out[label] = (evaluate(m, test)["accuracy"], weight_bytes(counts, bits), bits)
    return out


def main() -> None:
    p = base_parser("mixed_precision", __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--qat-epochs", type=int, default=10)
    a = p.parse_args()
    epochs, qat_epochs, seeds = (3, 1, 1) if a.quick else (a.epochs, a.qat_epochs, a.seeds)
    runs = [run_seed(s, epochs, qat_epochs) for s in range(seeds)]
    rows = []
    for label in runs[0]:
        rows.append(row(label, "test_accuracy", [100 * r[label][0] for r in runs], units="%",
                        dataset="mnist1d", model="mnist1d_cnn",
                        bits=[r[label][2] for r in runs]))
        rows.append(row(label, "weight_bytes", [r[label][1] for r in runs], units="bytes"))
    print_table(rows, "Mixed precision on mnist1d_cnn")
    for r in runs:
        print({k: v[2] for k, v in r.items() if k.startswith("mixed")})
    write_rows(rows, a.out, "mixed_precision")


if __name__ == "__main__":
    main()
