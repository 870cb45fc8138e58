"""Mixed-precision training on CPU: digits_cnn on digits in fp32, bf16 and fp16 (loss scaling).

Accuracy: each precision trains the same model from the same seed (Adam 3e-3, cosine, batch 64)
and is scored on the digits test split (359 images), ``--seeds`` seeds. Step time: one training
step (autocast forward + loss, backward, Adam step) on a fixed batch of 64, timed in interleaved
rounds (fp32, bf16, fp16, fp32, ...) so machine load hits every precision alike; the ratio to
fp32 of the same round is reported. One thread (``torch.set_num_threads(1)``); the 1-minute
load average is recorded next to the timings.

Usage: ``python benchmarks/amp.py [--seeds 3] [--epochs 10]`` -> ``benchmarks/results/amp.json``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import base_parser, print_table, row, write_rows  # noqa: E402
from leandl.data import load_data  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.train.amp import AmpContext  # noqa: E402
from leandl.train.config import TrainConfig  # noqa: E402
from leandl.train.losses import soft_cross_entropy  # noqa: E402
from leandl.train.trainer import Trainer  # noqa: E402

PRECISIONS = ("fp32", "bf16", "fp16")


def train_accuracy(precision: str, seed: int, epochs: int) -> tuple[float, float, int]:
    """(test accuracy, train seconds, skipped fp16 steps) of one run."""
    data = load_data("digits", seed=0)
    torch.manual_seed(seed)
    model = create_model("digits_cnn", num_classes=10, input_shape=[1, 8, 8])
    cfg = TrainConfig(epochs=epochs, batch_size=64, optimizer="adam", lr=3e-3, weight_decay=1e-4,
                      schedule="cosine", seed=seed, progress=False, checkpoint_every=0, log_every=0,
                      eval_every=epochs, precision=precision)
    res = Trainer(model, cfg, train_data=data.train, val_data=None, num_classes=10).fit()
    with torch.no_grad():
        acc = float((model.eval()(data.test.inputs).argmax(-1) == data.test.targets).float().mean())
    return acc, float(res.metrics["train_seconds"]), int(res.metrics.get("amp_steps_skipped", 0))


def step_times(rounds: int, steps: int) -> dict[str, list[float]]:
    """Seconds per training step, ``rounds`` interleaved rounds of ``steps`` steps per precision."""
    data = load_data("digits", seed=0)
    x, y = data.train.inputs[:64], data.train.targets[:64]
    q = torch.nn.functional.one_hot(y, 10).float()
    setups = {}
    for p in PRECISIONS:
        torch.manual_seed(0)
        model = create_model("digits_cnn", num_classes=10, input_shape=[1, 8, 8]).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        setups[p] = (model, opt, AmpContext(p, torch.device("cpu")))

    def step(p: str) -> None:
        model, opt, amp = setups[p]
        with amp.autocast():
            loss = soft_cross_entropy(model(x), q).mean()
        opt.zero_grad(set_to_none=True)
        amp.backward(loss, opt)
        amp.step(opt)

    for p in PRECISIONS:  # warm-up
        for _ in range(5):
            step(p)
    out: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(rounds):
        for p in PRECISIONS:
            t0 = time.perf_counter()
            for _ in range(steps):
                step(p)
            out[p].append((time.perf_counter() - t0) / steps)
    return out


def main() -> None:
    p = base_parser("amp", __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    epochs = 3 if args.quick else args.epochs
    seeds = list(range(1 if args.quick else args.seeds))
    common = {"dataset": "digits (test split, 359 images)", "model": "digits_cnn", "threads": 1,
              "device": "cpu", "epochs": epochs, "batch_size": 64}
    rows = []
    results = {prec: [train_accuracy(prec, s, epochs) for s in seeds] for prec in PRECISIONS}
    for prec, runs in results.items():
        rows.append(row(prec, "test_accuracy", [r[0] for r in runs], units="fraction", **common))
        rows.append(row(prec, "train_seconds", [r[1] for r in runs], units="s", load_avg_1m=os.getloadavg()[0],
                        **common))
        if prec == "fp16":
            rows.append(row(prec, "steps_skipped_by_loss_scaling", [r[2] for r in runs], units="steps", **common))
    diffs = [b[0] - f[0] for b, f in zip(results["bf16"], results["fp32"], strict=True)]
    rows.append(row("bf16 - fp32", "test_accuracy_difference", diffs, units="fraction (paired by seed)",
                    finding="acceptance: |mean| <= 0.005 (0.5 points)", **common))
    load0 = os.getloadavg()[0]
    times = step_times(3 if args.quick else args.rounds, 10 if args.quick else 20)
    load1 = os.getloadavg()[0]
    for prec in PRECISIONS:
        rows.append(row(prec, "step_seconds", times[prec], units="s per step (batch 64, fwd+bwd+Adam)",
                        load_avg_1m=[load0, load1], **common))
        ratios = [t / f for t, f in zip(times[prec], times["fp32"], strict=True)]
        rows.append(row(prec, "step_time_ratio_to_fp32", ratios, units="x (same round)",
                        median=statistics.median(ratios), load_avg_1m=[load0, load1], **common))
    print_table(rows, "AMP on CPU")
    write_rows(rows, args.out, "amp")


if __name__ == "__main__":
    main()
