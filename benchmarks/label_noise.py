"""Label-noise benchmark: clean test accuracy and memorisation of noise-robust techniques.

MNIST-1D (generated locally, 3,600 train / 400 val / 1,000 test), ``mnist1d_cnn`` (width 32),
Adam lr 3e-3, cosine schedule, no weight decay, batch 128, 30 epochs: long enough for plain
cross-entropy to fit most of the wrong labels. Noise: 40 % symmetric ("exclude_true": flipped
labels go to one of the other 9 classes) and 20 % pairflip (y -> y + 1). Per method and seed
(the seed drives the noise draw, the val split, the initial weights and the data order) it
reports the final-epoch clean test accuracy and, from the noise monitor, the share of the noisy
training samples predicted as their noisy label (memorised) or their clean label (corrected).

Run: ``python benchmarks/label_noise.py [--seeds 3] [--quick] [--noise sym40,pair20]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

from leandl.data import load_data, make_loader  # noqa: E402
from leandl.data.noise import apply_noise  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.recipes.schema import NoiseConfig  # noqa: E402
from leandl.techniques.bootstrapping import Bootstrapping  # noqa: E402
from leandl.techniques.confidence_penalty import ConfidencePenalty  # noqa: E402
from leandl.techniques.gce import GCE  # noqa: E402
from leandl.techniques.gradient_rescaling import GradientRescaling  # noqa: E402
from leandl.techniques.imae import IMAE  # noqa: E402
from leandl.techniques.label_smoothing import LabelSmoothing  # noqa: E402
from leandl.techniques.mae import MAE  # noqa: E402
from leandl.techniques.noise_monitor import NoiseMonitor  # noqa: E402
from leandl.techniques.proselflc import ProSelfLC  # noqa: E402
from leandl.techniques.sce import SCE  # noqa: E402
from leandl.train.config import TrainConfig  # noqa: E402
from leandl.train.evaluate import evaluate  # noqa: E402
from leandl.train.trainer import Trainer  # noqa: E402

NAME = "label_noise"

METHODS: dict[str, tuple[str, Callable[[], list[Any]]]] = {
    "CE": ("cross-entropy", lambda: []),
    "label_smoothing": ("smoothing 0.1", lambda: [LabelSmoothing(0.1)]),
    "confidence_penalty": ("beta 0.1", lambda: [ConfidencePenalty(beta=0.1)]),
    "bootstrapping": ("soft, beta 0.95", lambda: [Bootstrapping("soft")]),
    "proselflc": ("B 8, transit 0.3, entropy trust, live target",
                  lambda: [ProSelfLC(exp_base=8.0, transit=0.3)]),
    "mae": ("||p - q||_1", lambda: [MAE()]),
    "imae": ("T 8", lambda: [IMAE(temperature=8.0)]),
    "gr": ("beta 8, lam 0.5", lambda: [GradientRescaling(beta=8.0, lam=0.5)]),
    "gce": ("q 0.7", lambda: [GCE(q=0.7)]),
    "sce": ("alpha 0.1, beta 1, A -4", lambda: [SCE(alpha=0.1, beta=1.0)]),
}

NOISES = {
    "sym40": {"type": "symmetric", "rate": 0.4, "convention": "exclude_true"},
    "pair20": {"type": "pairflip", "rate": 0.2},
}


def run_one(method: str, noise: str, seed: int, epochs: int) -> dict[str, float]:
    """Train one model; return test accuracy, memorised, corrected, clean-train accuracy, seconds."""
    bundle = apply_noise(load_data("mnist1d", seed=seed), NoiseConfig(seed=seed, **NOISES[noise]))
    torch.manual_seed(seed)
    model = create_model("mnist1d_cnn", num_classes=bundle.num_classes, input_shape=list(bundle.input_shape))
    cfg = TrainConfig(epochs=epochs, batch_size=128, optimizer="adam", lr=3e-3, weight_decay=0.0,
                      schedule="cosine", seed=seed, progress=False, checkpoint_every=0, eval_every=epochs)
    monitor = NoiseMonitor(bundle, every=max(1, epochs))
    t0 = time.perf_counter()
    fit = Trainer(model, cfg, train_data=bundle.train, val_data=None, num_classes=bundle.num_classes,
                  techniques=[*METHODS[method][1](), monitor]).fit()
    seconds = time.perf_counter() - t0
    test = evaluate(fit.model, make_loader(bundle.test, 1000, shuffle=False))["accuracy"]
    return {"test_accuracy": test, "memorised": monitor.last["memorised"],
            "corrected": monitor.last["corrected"], "clean_train_accuracy": monitor.last["clean_train_accuracy"],
            "seconds": seconds}


def acceptance(rows: list[dict[str, Any]], noise: str) -> list[str]:
    """The issue's checks on the rows of one noise setting, as printable lines."""
    mean = {(r["method"], r["metric"]): r["mean"] for r in rows if r["noise"] == noise}
    ce_acc, ce_mem = mean.get(("CE", "test_accuracy")), mean.get(("CE", "memorised"))
    out = []
    for m in ("proselflc", "imae", "gr"):
        acc = mean.get((m, "test_accuracy"))
        if acc is not None and ce_acc is not None:
            out.append(f"[{noise}] {m} test acc {acc:.4f} vs CE {ce_acc:.4f}: {'PASS' if acc > ce_acc else 'FAIL'}")
    mem = mean.get(("proselflc", "memorised"))
    if mem is not None and ce_mem is not None:
        out.append(f"[{noise}] CE memorised {ce_mem:.4f} vs ProSelfLC {mem:.4f}: {'PASS' if ce_mem > mem else 'FAIL'}")
    return out


def main() -> None:
    p = base_parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30, help="epochs per run (default %(default)s)")
    p.add_argument("--noise", default="sym40,pair20", help="comma list of " + ", ".join(NOISES))
    p.add_argument("--methods", default=",".join(METHODS), help="comma list of methods (default all)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = 1 if args.quick else args.seeds
    epochs = 4 if args.quick else args.epochs
    noises = [n for n in args.noise.split(",") if n]
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods + noises if m not in METHODS and m not in NOISES]
    if unknown:
        p.error(f"unknown method or noise {unknown}; methods: {', '.join(METHODS)}; noises: {', '.join(NOISES)}")
    rows: list[dict[str, Any]] = []
    for noise in noises:
        for method in methods:
            results = [run_one(method, noise, seed, epochs) for seed in range(seeds)]
            for metric, units in (("test_accuracy", "fraction"), ("memorised", "fraction of noisy"),
                                  ("corrected", "fraction of noisy"), ("clean_train_accuracy", "fraction"),
                                  ("seconds", "s per run")):
                rows.append(row(method, metric, [r[metric] for r in results], units=units, noise=noise,
                                settings=METHODS[method][0], epochs=epochs, batch_size=128,
                                model="mnist1d_cnn", data="mnist1d",
                                threads=torch.get_num_threads()))
            acc = [r["test_accuracy"] for r in results]
            print(f"{noise} {method}: test {sum(acc) / len(acc):.4f}", flush=True)
    for noise in noises:
        print_table([r for r in rows if r["noise"] == noise and r["metric"] != "clean_train_accuracy"],
                    f"mnist1d, noise {noise}, {epochs} epochs, {seeds} seed(s)")
        for line in acceptance(rows, noise):
            print(line)
    write_rows(rows, args.out, NAME)


if __name__ == "__main__":
    main()
