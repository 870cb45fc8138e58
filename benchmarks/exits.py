"""Early-exit training on MNIST-1D: weighted sum vs gradient equilibrium vs GE + one-for-all KD.

A 1-D CNN (``mnist1d_cnn``, width 32) gets exits after ``stem``, ``layer1`` and ``layer2``
(4 exits with the final classifier, pooled MLP heads) and is trained jointly from scratch,
same seed, data and schedule for each method:

- ``weighted_sum``: ``sum_k CE_k`` (unit weights, MSDNet's loss)
- ``gradient_equilibrium``: the same loss, IMTA's gradient rescaling (arXiv 1908.09294)
- ``ge_ofa_kd``: GE plus one-for-all KD (gamma 0.1, T 1; deepest exit teaches the others)

Reported per method (mean +- std over seeds): the mean test accuracy over the 4 exits, each
exit's test accuracy, and the test accuracy at an average budget of 50 % of the backbone's
MACs (thresholds calibrated on the validation split). SGD with momentum, as in IMTA (under
Adam GE is a no-op: it rescales each block's gradient by a constant). ``--quick``: smoke run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, versions, write_rows  # noqa: E402

from leandl.data import load_data, make_loader  # noqa: E402
from leandl.dynamic import (  # noqa: E402
    attach_exits,
    backbone_macs,
    calibrate_budget,
    collect_exit_outputs,
    exit_costs,
    simulate,
)
from leandl.dynamic.policy import confidences  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.registry import TECHNIQUES  # noqa: E402
from leandl.train import TrainConfig, Trainer  # noqa: E402

METHODS = {
    "weighted_sum": [],
    "gradient_equilibrium": [("gradient_equilibrium", {})],
    "ge_ofa_kd": [("gradient_equilibrium", {}), ("one_for_all_kd", {"gamma": 0.1, "temperature": 1.0})],
}


def run_one(method: str, seed: int, data, epochs: int) -> dict[str, float | list[float]]:
    torch.manual_seed(seed)
    net = create_model("mnist1d_cnn", num_classes=data.num_classes, input_shape=data.input_shape, width=32)
    model = attach_exits(net, ["stem", "layer1", "layer2"], head="mlp", pool=4, hidden=64)
    techs = [TECHNIQUES.get(n)(**kw) for n, kw in METHODS[method]]
    # SGD, as in IMTA: GE scales each block's gradient by a per-block constant, which Adam's
    # per-parameter normalisation cancels (GE is a no-op under Adam up to eps)
    cfg = TrainConfig(epochs=epochs, batch_size=64, optimizer="sgd", lr=0.05, weight_decay=5e-4,
                      schedule="cosine", seed=seed, progress=False, checkpoint_every=0)
    Trainer(model, cfg, train_data=data.train, val_data=data.val, num_classes=data.num_classes,
            techniques=techs).fit()
    shape = tuple(data.input_shape)
    costs, full = exit_costs(model, shape), backbone_macs(model, shape)
    val_z, val_y = collect_exit_outputs(model, make_loader(data.val, 512, shuffle=False))
    test_z, test_y = collect_exit_outputs(model, make_loader(data.test, 512, shuffle=False))
    correct = torch.stack([z.argmax(-1) == test_y for z in test_z])
    accs = correct.float().mean(dim=1).tolist()
    pol = calibrate_budget(val_z, val_y, costs, 0.5 * full)
    budget = simulate(confidences(test_z), correct, pol.thresholds, costs)
    return {"mean_exit_accuracy": sum(accs) / len(accs), "exit_accuracy": accs,
            "accuracy_at_50pct_macs": budget["accuracy"],
            "expected_macs_fraction": budget["expected_macs"] / full}


def main() -> None:
    p = base_parser("exits", __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    args = p.parse_args()
    seeds = 1 if args.quick else args.seeds
    epochs = 2 if args.quick else args.epochs
    t0 = time.perf_counter()
    results: dict[str, list[dict]] = {m: [] for m in METHODS}
    for seed in range(seeds):
        data = load_data("mnist1d", seed=seed)
        for method in METHODS:
            results[method].append(run_one(method, seed, data, epochs))
    extra = {"units": "fraction in [0, 1] (test split)", "threads": torch.get_num_threads(),
             "epochs": epochs, "model": "mnist1d_cnn width 32, 4 exits", "versions": versions()}
    rows = []
    for method, res in results.items():
        rows.append(row(method, "mean_exit_accuracy", [r["mean_exit_accuracy"] for r in res], **extra))
        for k in range(len(res[0]["exit_accuracy"])):
            rows.append(row(method, f"exit{k + 1}_accuracy", [r["exit_accuracy"][k] for r in res], **extra))
        rows.append(row(method, "accuracy_at_50pct_macs", [r["accuracy_at_50pct_macs"] for r in res], **extra))
        rows.append(row(method, "expected_macs_fraction", [r["expected_macs_fraction"] for r in res],
                        **{**extra, "units": "fraction of backbone MACs per sample"}))
    print_table(rows, f"early-exit training, MNIST-1D, {seeds} seed(s), {epochs} epochs "
                      f"({time.perf_counter() - t0:.0f} s)")
    write_rows(rows, args.out, "exits")


if __name__ == "__main__":
    main()
