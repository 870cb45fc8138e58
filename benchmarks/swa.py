"""SWA vs plain SGD at the same budget (Izmailov et al., arXiv 1803.05407).

mnist1d_cnn (BatchNorm) on MNIST-1D (3,601 training signals, 1,000 test), SGD momentum 0.9,
batch 64, ``--epochs`` epochs, same seeds for both:

- ``sgd``: the trainer's cosine schedule from lr 0.05 to 0 (a strong single-model baseline).
- ``swa``: the same run, but from 75 % of the epochs on the learning rate is held at a constant
  ``swa_lr`` = 0.01 (the paper's schedule), the weights are averaged at the end of every epoch,
  and the average is swapped in with its BatchNorm statistics recomputed by one pass over the
  training data.

Reported: test accuracy mean +- std over seeds for each, the per-seed difference, and the
accuracy of the SWA run's last SGD iterate (the weights before the swap, on the validation
split, from the trainer's history). Acceptance (issue 5): SWA mean test accuracy >= SGD mean.

    python benchmarks/swa.py --seeds 3 --epochs 20 --threads 1
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

from leandl.data import load_data, make_loader  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.techniques.swa import SWA  # noqa: E402
from leandl.train import TrainConfig, Trainer  # noqa: E402
from leandl.train.evaluate import evaluate  # noqa: E402


def run_one(method: str, seed: int, epochs: int, start: float, swa_lr: float) -> dict[str, float]:
    """Train ``sgd`` or ``swa`` once; return test accuracy (and the last iterate's val accuracy)."""
    bundle = load_data("mnist1d", seed=0)
    torch.manual_seed(seed)
    model = create_model("mnist1d_cnn", num_classes=bundle.num_classes, input_shape=bundle.input_shape)
    techniques = [SWA(start=start, swa_lr=swa_lr)] if method == "swa" else []
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, schedule="cosine", seed=seed, progress=False,
                      checkpoint_every=0)
    res = Trainer(model, cfg, train_data=bundle.train, val_data=bundle.val, num_classes=bundle.num_classes,
                  techniques=techniques).fit()
    test = evaluate(res.model, make_loader(bundle.test, 512, shuffle=False, seed=0, epoch=0))
    return {"test_accuracy": test["accuracy"], "last_iterate_val_accuracy": res.history[-1]["val_accuracy"],
            "final_val_accuracy": res.metrics["val_accuracy"]}


def main() -> None:
    p = base_parser("swa", __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--start", type=float, default=0.75)
    p.add_argument("--swa-lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs = 6 if args.quick else args.epochs
    seeds = min(args.seeds, 2) if args.quick else args.seeds
    out: dict[str, list[dict[str, float]]] = {"sgd": [], "swa": []}
    for seed in range(seeds):
        for method in (("sgd", "swa") if seed % 2 == 0 else ("swa", "sgd")):
            out[method].append(run_one(method, seed, epochs, args.start, args.swa_lr))
            r = out[method][-1]
            print(f"seed {seed} {method}: test acc {r['test_accuracy']:.4f}  "
                  f"(last iterate val {r['last_iterate_val_accuracy']:.4f}, final val {r['final_val_accuracy']:.4f})",
                  flush=True)
    extra = {"model": "mnist1d_cnn", "dataset": "mnist1d", "epochs": epochs, "batch_size": 64,
             "swa_start": args.start, "swa_lr": args.swa_lr, "threads": torch.get_num_threads()}
    rows = [row(m, "test_accuracy", [r["test_accuracy"] for r in out[m]], units="fraction", **extra)
            for m in ("sgd", "swa")]
    rows.append(row("swa", "test_accuracy_change", [a["test_accuracy"] - b["test_accuracy"]
                                                    for a, b in zip(out["swa"], out["sgd"], strict=True)],
                    units="fraction (vs sgd, same seed)", **extra))
    rows.append(row("swa", "last_iterate_val_accuracy", [r["last_iterate_val_accuracy"] for r in out["swa"]],
                    units="fraction (before the swap)", **extra))
    rows.append(row("swa", "final_val_accuracy", [r["final_val_accuracy"] for r in out["swa"]],
                    units="fraction (after swap + BN update)", **extra))
    rows.append(row("sgd", "final_val_accuracy", [r["final_val_accuracy"] for r in out["sgd"]],
                    units="fraction", **extra))
    sgd_mean, swa_mean = rows[0]["mean"], rows[1]["mean"]
    rows[1]["acceptance"] = f">= sgd mean ({sgd_mean:.4f}): {'pass' if swa_mean >= sgd_mean else 'FAIL'}"
    print_table(rows, f"SWA vs SGD (mnist1d_cnn, {epochs} epochs, {seeds} seeds)")
    write_rows(rows, args.out, "swa")


if __name__ == "__main__":
    main()
