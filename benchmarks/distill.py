"""Distillation on MNIST-1D: student alone vs kd / dkd / fitnet / rkd, mutual, self, label noise, cache.

Teacher: ``mnist1d_cnn`` (width 32). Student: ``mnist1d_cnn`` (width 8; an MLP student gained nothing from KD here). Every run uses leandl's
Trainer (Adam, cosine, final-epoch weights) and reports clean *test* accuracy, mean +- std
over seeds. Tables:

1. offline KD: student alone, kd, dkd, fitnet, rkd (teacher trained first, same seed);
2. mutual: each peer of a 2-MLP cohort vs the same MLP (same init seed) trained alone;
3. self: a 2-exit MLP (exit after layer1 + final head) with and without BYOT self-distillation;
4. 40 % symmetric label noise ("flip to another class"): noisy student alone vs kd from a
   teacher trained on the same noisy labels;
5. teacher cache: seconds per kd epoch with the cache on vs off (epochs after the first,
   alternating rounds), and the loss difference between the two paths.

Usage: ``python benchmarks/distill.py [--seeds 3] [--quick] [--out PATH]``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

from leandl.data import TensorSplit, load_data  # noqa: E402
from leandl.distill import Cohort  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.registry import TECHNIQUES  # noqa: E402
from leandl.train.config import TrainConfig  # noqa: E402
from leandl.train.trainer import Trainer  # noqa: E402

UNITS = "fraction of test samples (clean labels), final epoch"


def two_exit(seed: int) -> nn.Module:
    """The student with an early exit after ``stem`` (leandl.dynamic): forward -> [exit, final]."""
    from leandl.dynamic import attach_exits

    return attach_exits(build(STUDENT_NAME, seed, **STUDENT), after=["stem"])


def symmetric_noise(targets: torch.Tensor, num_classes: int, rate: float, seed: int) -> torch.Tensor:
    """Flip a ``rate`` share of labels to a uniformly drawn *other* class (exact count)."""
    try:
        from leandl.data.noise import inject_noise

        out = inject_noise(targets, num_classes, type="symmetric", rate=rate, convention="exclude_true", seed=seed)
        return out[0] if isinstance(out, tuple) else out
    except ImportError:
        g = torch.Generator().manual_seed(seed)
        noisy = targets.clone()
        idx = torch.randperm(len(targets), generator=g)[: int(round(rate * len(targets)))]
        shift = torch.randint(1, num_classes, (len(idx),), generator=g)
        noisy[idx] = (targets[idx] + shift) % num_classes
        return noisy


def accuracy(model: nn.Module, split: TensorSplit) -> list[float]:
    """Test accuracy of every output of ``model`` (one entry for a single-output model)."""
    model.eval()
    with torch.no_grad():
        out = model(split.inputs)
    outs = out if isinstance(out, list) else [out]
    return [float((o.argmax(1) == split.targets).float().mean()) for o in outs]


def fit(model: nn.Module, train: TensorSplit, techniques: list, epochs: int, seed: int) -> Trainer:
    cfg = TrainConfig(epochs=epochs, batch_size=64, optimizer="adam", lr=3e-3, weight_decay=1e-4,
                      schedule="cosine", seed=seed, progress=False, checkpoint_every=0, log_every=0)
    tr = Trainer(model, cfg, train_data=train, val_data=None, num_classes=10, techniques=techniques)
    tr.fit()
    return tr


def build(name: str, seed: int, **kwargs: Any) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, num_classes=10, input_shape=(1, 40), **kwargs)


STUDENT_NAME = "mnist1d_cnn"
STUDENT = {"width": 8}


def one_seed(seed: int, epochs: int, train: TensorSplit, test: TensorSplit) -> dict[str, list[float]]:
    res: dict[str, list[float]] = {}
    teacher = fit(build("mnist1d_cnn", 100 + seed), train, [], epochs, seed).state.model
    res["teacher (mnist1d_cnn)"] = accuracy(teacher, test)
    res["student alone (cnn w8)"] = accuracy(fit(build(STUDENT_NAME, seed, **STUDENT), train, [], epochs, seed).state.model, test)
    losses = {"kd": {"temperature": 4.0, "alpha": 0.9}, "dkd": {"alpha": 1.0, "beta": 2.0, "temperature": 4.0},
              "fitnet": {"student_layer": "layer1", "teacher_layer": "layer2", "weight": 1.0},
              "rkd": {}}
    for name, kw in losses.items():
        tech = TECHNIQUES.get(name)(teacher=teacher, **kw)
        res[f"student + {name}"] = accuracy(fit(build(STUDENT_NAME, seed, **STUDENT), train, [tech], epochs, seed).state.model, test)
    peer2 = build(STUDENT_NAME, 1000 + seed, **STUDENT)
    res["peer 2 alone (cnn w8)"] = accuracy(fit(peer2, train, [], epochs, seed).state.model, test)
    cohort = Cohort([build(STUDENT_NAME, seed, **STUDENT), build(STUDENT_NAME, 1000 + seed, **STUDENT)])
    acc = accuracy(fit(cohort, train, [TECHNIQUES.get("mutual")()], epochs, seed).state.model, test)
    res["peer 1 mutual"], res["peer 2 mutual"] = acc[:1], acc[1:]
    for label, techs in (("2-exit student alone", []), ("2-exit student + self", [TECHNIQUES.get("self")(alpha=0.3)])):
        acc = accuracy(fit(two_exit(seed), train, techs, epochs, seed).state.model, test)
        res[f"{label} [exit 1]"], res[f"{label} [final]"] = acc[:1], acc[1:]
    noisy = TensorSplit(train.inputs, symmetric_noise(train.targets, 10, 0.4, seed))
    noisy_teacher = fit(build("mnist1d_cnn", 100 + seed), noisy, [], epochs, seed).state.model
    res["noise40: teacher"] = accuracy(noisy_teacher, test)
    res["noise40: student alone"] = accuracy(fit(build(STUDENT_NAME, seed, **STUDENT), noisy, [], epochs, seed).state.model, test)
    kd = TECHNIQUES.get("kd")(teacher=noisy_teacher, temperature=4.0, alpha=0.9)
    res["noise40: student + kd"] = accuracy(fit(build(STUDENT_NAME, seed, **STUDENT), noisy, [kd], epochs, seed).state.model, test)
    return res


def cache_timing(train: TensorSplit, teacher: nn.Module, epochs: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per kd epoch (epochs after the first) with the teacher cache on and off, alternating."""
    out: dict[str, list[float]] = {"on": [], "off": [], "loss_diff": []}
    for _ in range(rounds):
        hist = {}
        for cache in (True, False):
            tech = TECHNIQUES.get("kd")(teacher=teacher, cache=cache)
            tr = fit(build(STUDENT_NAME, 0, **STUDENT), train, [tech], epochs, 0)
            out["on" if cache else "off"].append(statistics.median(h["epoch_seconds"] for h in tr.history[1:]))
            hist[cache] = [h["train_loss"] for h in tr.history]
        out["loss_diff"].append(max(abs(a - b) for a, b in zip(hist[True], hist[False], strict=True)))
    return out


def main() -> None:
    p = base_parser("distill", __doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (default %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 20, quick 3)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    epochs = args.epochs or (3 if args.quick else 20)
    seeds = 1 if args.quick else args.seeds
    bundle = load_data("mnist1d", seed=0)
    train, test = bundle.train, bundle.test
    if args.quick:
        train = train.subset(torch.arange(1200))
    per: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for seed in range(seeds):
        for k, v in one_seed(seed, epochs, train, test).items():
            per.setdefault(k, []).extend(v)
        print(f"seed {seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    extra = {"units": UNITS, "dataset": "mnist1d (3600 train / 1000 test)" if not args.quick else "mnist1d quick",
             "epochs": epochs, "batch_size": 64, "threads": torch.get_num_threads(), "student": "mnist1d_cnn width 8"}
    rows = [row(k, "test_accuracy", v, **extra) for k, v in per.items()]
    teacher = fit(build("mnist1d_cnn", 100, width=64), train, [], 1, 0).state.model
    timing = cache_timing(train, teacher, 3 if args.quick else 5, 1 if args.quick else 3)
    ratios = [off / on for on, off in zip(timing["on"], timing["off"], strict=True)]
    tx = {"units": "seconds per epoch (median of epochs 2..E)", "batch_size": 64, "threads": torch.get_num_threads(),
          "teacher": "mnist1d_cnn width 64", "student": "mnist1d_cnn width 8"}
    rows += [row("kd, teacher cache on", "epoch_seconds", timing["on"], **tx),
             row("kd, teacher cache off", "epoch_seconds", timing["off"], **tx),
             row("kd cache speed-up (off / on)", "ratio", ratios, units="x, per alternating round"),
             row("kd cache vs no cache", "max_abs_train_loss_diff", timing["loss_diff"], units="loss units")]
    print_table(rows, f"distillation on MNIST-1D, {seeds} seed(s), {epochs} epochs, {time.perf_counter() - t0:.0f} s")
    write_rows(rows, args.out, "distill")


if __name__ == "__main__":
    main()
