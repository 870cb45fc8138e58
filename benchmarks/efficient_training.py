"""Efficient training: mini-batch dropping (SMD), selective layer update (SLU), FreezeOut.

digits_cnn (3 conv-BN-ReLU blocks; ``--model resnet20`` for residual blocks) on the 8x8 digits
set, SGD with a cosine
schedule, batch 64. For each seed the runs (baseline, ``minibatch_dropping`` rate 0.5,
``selective_layer_update`` freeze_prob 0.5, ``layer_freezing`` t0 0.5 linear with FreezeOut's
layer-wise learning-rate annealing, and the same freezing without it) train back to back in an
order that alternates by seed, so slow phases of a noisy machine hit all of them. Reported:

- epoch wall time: median over epochs of the trainer's ``epoch_seconds`` (training batches
  only, evaluation excluded), and the median over seeds of the per-seed ratio SMD / baseline.
  Acceptance (issue 5): ratio <= 0.6 at rate 0.5.
- test accuracy of each run and its change vs the baseline of the same seed.
- MACs saved (SMD: forward + backward of skipped batches) and SLU / FreezeOut backward MACs
  saved, also as a fraction of the baseline backward MACs (2 x forward MACs per trained sample).

    python benchmarks/efficient_training.py --seeds 3 --epochs 8 --threads 1
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

from leandl.data import load_data, make_loader  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.registry import TECHNIQUES  # noqa: E402
from leandl.train import TrainConfig, Trainer  # noqa: E402
from leandl.train.evaluate import evaluate  # noqa: E402

METHODS: dict[str, tuple[str, dict[str, Any]] | None] = {
    "baseline": None,
    "minibatch_dropping": ("minibatch_dropping", {"rate": 0.5}),
    "selective_layer_update": ("selective_layer_update", {"freeze_prob": 0.5}),
    "layer_freezing": ("layer_freezing", {"t0": 0.5}),
    "layer_freezing_no_anneal": ("layer_freezing", {"t0": 0.5, "anneal": False}),
}
SEEDED = ("minibatch_dropping", "selective_layer_update")  # techniques that draw random numbers


def run_one(method: str, seed: int, epochs: int, model_name: str, batch: int) -> dict[str, float]:
    """Train one configuration; return epoch time, test accuracy and the savings counters."""
    bundle = load_data("digits", seed=0)
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=bundle.num_classes, input_shape=bundle.input_shape)
    spec = METHODS[method]
    seeded = {"seed": seed} if spec is not None and spec[0] in SEEDED else {}
    techniques = [] if spec is None else [TECHNIQUES.get(spec[0])(**seeded, **spec[1])]
    cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=0.05, schedule="cosine", seed=seed,
                      progress=False, checkpoint_every=0, eval_every=epochs)
    res = Trainer(model, cfg, train_data=bundle.train, val_data=bundle.val, num_classes=bundle.num_classes,
                  techniques=techniques).fit()
    test = evaluate(res.model, make_loader(bundle.test, 512, shuffle=False, seed=0, epoch=0))
    m = res.metrics
    return {
        "epoch_seconds": statistics.median(h["epoch_seconds"] for h in res.history),
        "test_accuracy": test["accuracy"],
        "macs_saved": m.get("macs_saved", 0.0),
        "fraction_skipped": m.get("smd_fraction_skipped", 0.0),
        "backward_macs_saved": m.get("backward_macs_saved", 0.0),
        "backward_fraction_saved": m.get("slu_backward_fraction_saved", m.get("freeze_backward_fraction_saved", 0.0)),
    }


def main() -> None:
    p = base_parser("efficient_training", __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--model", default="digits_cnn")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs = 2 if args.quick else args.epochs
    seeds = min(args.seeds, 2) if args.quick else args.seeds
    names = list(METHODS)
    res: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for seed in range(seeds):
        order = names if seed % 2 == 0 else names[::-1]
        for name in order:
            res[name].append(run_one(name, seed, epochs, args.model, args.batch_size))
            r = res[name][-1]
            print(f"seed {seed} {name:<24} epoch {r['epoch_seconds']:.3f} s  test acc {r['test_accuracy']:.4f}",
                  flush=True)
    extra = {"model": args.model, "dataset": "digits", "epochs": epochs, "batch_size": args.batch_size,
             "threads": torch.get_num_threads()}
    base = res["baseline"]
    rows = [row(n, "epoch_seconds_median", [r["epoch_seconds"] for r in res[n]], units="s", **extra) for n in names]
    rows += [row(n, "test_accuracy", [r["test_accuracy"] for r in res[n]], units="fraction", **extra) for n in names]
    for n in names[1:]:
        rows.append(row(n, "test_accuracy_change", [r["test_accuracy"] - b["test_accuracy"]
                                                    for r, b in zip(res[n], base, strict=True)],
                        units="fraction (vs baseline, same seed)", **extra))
    ratios = [r["epoch_seconds"] / b["epoch_seconds"] for r, b in zip(res["minibatch_dropping"], base, strict=True)]
    rows.append(row("minibatch_dropping", "epoch_time_ratio", ratios, units="x baseline (mean of per-seed ratios)",
                    median=statistics.median(ratios), acceptance="<= 0.6", **extra))
    smd = res["minibatch_dropping"]
    rows.append(row("minibatch_dropping", "fraction_skipped", [r["fraction_skipped"] for r in smd],
                    units="fraction of batches", **extra))
    rows.append(row("minibatch_dropping", "macs_saved", [r["macs_saved"] for r in smd],
                    units="MACs (forward + backward of skipped batches)", **extra))
    slu = res["selective_layer_update"]
    rows.append(row("selective_layer_update", "backward_macs_saved", [r["backward_macs_saved"] for r in slu],
                    units="MACs (weight-gradient MACs of frozen blocks)", **extra))
    rows.append(row("selective_layer_update", "backward_fraction_saved", [r["backward_fraction_saved"] for r in slu],
                    units="fraction of baseline backward MACs", **extra))
    for n in ("layer_freezing", "layer_freezing_no_anneal"):
        rows.append(row(n, "epoch_time_ratio", [r["epoch_seconds"] / b["epoch_seconds"]
                                                for r, b in zip(res[n], base, strict=True)],
                        units="x baseline (mean of per-seed ratios; median over epochs, frozen and not)", **extra))
        rows.append(row(n, "backward_fraction_saved", [r["backward_fraction_saved"] for r in res[n]],
                        units="fraction of baseline backward MACs", **extra))
    print_table(rows, f"efficient training ({args.model} on digits, {epochs} epochs, {seeds} seeds)")
    write_rows(rows, args.out, "efficient_training")


if __name__ == "__main__":
    main()
