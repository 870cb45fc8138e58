"""Early-bird tickets vs full dense training then pruning (mnist1d_cnn, BN-gamma L1, 3 seeds).

Both arms train ``mnist1d_cnn`` with the ``l1_bn`` penalty for a planned ``E`` epochs, prune 50 %
of the BN channels (global |gamma|, the ``bn_scale`` criterion), and train the pruned network
for ``E`` epochs with the same settings:

* ``early_bird``: the ``early_bird`` technique stops the dense phase when the last 5 masks agree
  (Hamming <= 0.1) and its mask is cut out;
* ``full_then_prune``: the dense phase runs all ``E`` epochs, then ``bn_scale`` at ratio 0.5.

Reported per arm: test accuracy (fraction), dense epochs run, dense-training MACs spent
(3 x forward MACs x training samples x dense epochs) and the early-bird epoch as a fraction of
the planned epochs. Usage: ``python benchmarks/early_bird.py [--quick] [--seeds 3]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import base_parser, print_table, row, write_rows  # noqa: E402

NAME = "early_bird"


def _train(model: torch.nn.Module, data: Any, epochs: int, seed: int, techniques: list[Any]) -> Any:
    from leandl.train.config import TrainConfig
    from leandl.train.trainer import Trainer

    cfg = TrainConfig(epochs=epochs, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4,
                      schedule="cosine", seed=seed, progress=False, checkpoint_every=0, batch_size=64)
    return Trainer(model, cfg, train_data=data.train, val_data=data.val, num_classes=data.num_classes,
                   techniques=techniques).fit()


def _test_acc(model: torch.nn.Module, data: Any) -> float:
    from leandl.data import make_loader
    from leandl.train.evaluate import evaluate

    return float(evaluate(model, make_loader(data.test, 512, shuffle=False))["accuracy"])


def run_arm(arm: str, seed: int, epochs: int, data: Any, ratio: float = 0.5) -> dict[str, float]:
    """One seed of one arm; returns accuracy, dense epochs, dense MACs and pruned MACs."""
    from leandl.measure import count_macs
    from leandl.models import create_model
    from leandl.prune.api import prune_
    from leandl.registry import TECHNIQUES

    torch.manual_seed(seed)
    model = create_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=list(data.input_shape))
    x1 = data.test[0][0].unsqueeze(0)
    fwd = count_macs(model, x1).total
    techs: list[Any] = [TECHNIQUES.get("l1_bn")(lam=1e-4)]
    eb = None
    if arm == "early_bird":
        eb = TECHNIQUES.get("early_bird")(ratio=ratio, queue=5, epsilon=0.1)
        techs.append(eb)
    t0 = time.perf_counter()
    dense = _train(model, data, epochs, seed, techs)
    dense_epochs = int(dense.metrics["epochs_run"])
    keep = dense.metrics.get("early_bird_keep") if eb is not None else None
    report = prune_(dense.model, x1, criterion="bn_scale", target={"ratio": ratio}, scope="global",
                    round_to=None, keep=keep)
    final = _train(dense.model, data, epochs, seed, [TECHNIQUES.get("l1_bn")(lam=1e-4)])
    return {"test_accuracy": _test_acc(final.model, data), "dense_epochs": dense_epochs,
            "dense_epochs_fraction": dense_epochs / epochs,
            "dense_train_macs": 3.0 * fwd * len(data.train) * dense_epochs,
            "macs_kept_fraction": report.macs_after / report.macs_before,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    p = base_parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="planned dense epochs (default 30, quick 12)")
    args = p.parse_args()
    from leandl.data import load_data

    epochs = args.epochs or (12 if args.quick else 30)
    seeds = list(range(1 if args.quick and args.seeds == 3 else args.seeds))
    torch.set_num_threads(2)
    results: dict[str, list[dict[str, float]]] = {"early_bird": [], "full_then_prune": []}
    for seed in seeds:
        data = load_data("mnist1d", seed=seed)
        for arm in results:
            res = run_arm(arm, seed, epochs, data)
            results[arm].append(res)
            print(f"seed {seed} {arm}: " + ", ".join(f"{k}={v:.4g}" for k, v in res.items()), flush=True)
    units = {"test_accuracy": "fraction", "dense_epochs": "epochs", "dense_epochs_fraction": "of planned",
             "dense_train_macs": "MACs (3 x fwd x samples x epochs)", "macs_kept_fraction": "of dense MACs",
             "seconds": "s wall (noisy shared machine)"}
    rows = [row(arm, k, [r[k] for r in res], units=units[k], planned_epochs=epochs, threads=2, batch_size=64)
            for arm, res in results.items() for k in units]
    saved = [1 - a["dense_train_macs"] / b["dense_train_macs"]
             for a, b in zip(results["early_bird"], results["full_then_prune"])]
    rows.append(row("early_bird", "dense_train_macs_saved_fraction", saved, units="fraction"))
    gap = [b["test_accuracy"] - a["test_accuracy"] for a, b in zip(results["early_bird"], results["full_then_prune"])]
    rows.append(row("full_minus_early_bird", "test_accuracy_gap", gap, units="fraction (positive = EB worse)"))
    print_table(rows, f"early-bird vs full-train-then-prune, mnist1d_cnn, {epochs} planned epochs")
    write_rows(rows, args.out, NAME)


if __name__ == "__main__":
    main()
