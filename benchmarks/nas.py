"""Differentiable cell search (DARTS) and NAS-KD on MNIST-1D vs the hand-designed ``mnist1d_cnn``.

Per seed, on the same data split and training schedule (the ``mnist1d-exits`` recipe defaults:
Adam lr 3e-3, weight decay 1e-4, cosine, batch 128, 10 epochs):

- ``hand_cnn``: ``mnist1d_cnn`` width 32 (arXiv 2011.14439's CNN), the MACs target;
- ``darts_cell``: first-order DARTS on the training split (half weights, half alphas; supernet
  width 8, 3 cells of 2 nodes, 4 search epochs of which 1 warm-up), the derived cell widened
  to the largest width within the hand CNN's MACs, trained from scratch;
- ``nas_kd_cell``: the same search with the trained hand CNN as teacher (loss
  ``0.5 CE + 0.5 T^2 KL``, T=4) and the derived net trained with the same KD loss.
  ``--teacher big`` (``results/nas_kd.json``): the teacher is ``mnist1d_cnn`` width 64 (4x the
  MACs), and ``hand_cnn_kd`` (the hand CNN trained with the same KD) is the natural baseline.

Search space: none, skip, conv 3/5, separable conv 3/5, dilated conv 3 (pooling left out: in a
4-epoch search the parameter-free ops win by default, DARTS's known failure mode). Reported:
test accuracy, MACs per sample, search seconds (1 thread, machine load recorded), the
genotypes found.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

from leandl.data import load_data  # noqa: E402
from leandl.distill.kd import KnowledgeDistillation  # noqa: E402
from leandl.measure import count_macs  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.nas import SearchConfig, darts_search, fit_width  # noqa: E402
from leandl.train import TrainConfig, Trainer  # noqa: E402

OPS = ["none", "skip", "conv_3", "conv_5", "sep_conv_3", "sep_conv_5", "dil_conv_3"]


def _acc(model, split) -> float:
    xs, ys = zip(*[(split[i][0], int(split[i][1])) for i in range(len(split))], strict=True)
    model.eval()
    with torch.no_grad():
        return float((model(torch.stack(xs)).argmax(-1) == torch.tensor(ys)).float().mean())


def run_one(seed: int, epochs: int, search_epochs: int, teacher_kind: str = "hand") -> dict:
    data = load_data("mnist1d", seed=seed)
    shape, k = tuple(data.input_shape), data.num_classes
    x1 = torch.zeros(1, *shape)
    cfg = TrainConfig(epochs=epochs, batch_size=128, optimizer="adam", lr=3e-3, weight_decay=1e-4,
                      schedule="cosine", seed=seed, progress=False, checkpoint_every=0)

    def train(model, techniques=()):
        t0 = time.perf_counter()
        out = Trainer(model, cfg, train_data=data.train, val_data=data.val, num_classes=k,
                      techniques=list(techniques)).fit().model
        return out, time.perf_counter() - t0

    torch.manual_seed(seed)
    hand, hand_s = train(create_model("mnist1d_cnn", num_classes=k, input_shape=shape, width=32))
    target = count_macs(hand, x1).total
    out = {"hand_cnn": {"test_accuracy": _acc(hand, data.test), "macs": target, "train_seconds": hand_s,
                        "search_seconds": 0.0}}
    methods = [("darts_cell", None), ("nas_kd_cell", hand)]
    if teacher_kind == "big":  # a teacher 4x the hand CNN's MACs; the hand CNN with KD is the baseline
        torch.manual_seed(seed)
        big, big_s = train(create_model("mnist1d_cnn", num_classes=k, input_shape=shape, width=64))
        out["teacher_w64"] = {"test_accuracy": _acc(big, data.test), "macs": count_macs(big, x1).total,
                              "train_seconds": big_s, "search_seconds": 0.0}
        torch.manual_seed(seed)
        hand_kd, s = train(create_model("mnist1d_cnn", num_classes=k, input_shape=shape, width=32),
                           [KnowledgeDistillation(big, temperature=4.0, alpha=0.5)])
        out["hand_cnn_kd"] = {"test_accuracy": _acc(hand_kd, data.test), "macs": target, "train_seconds": s,
                              "search_seconds": 0.0}
        methods = [("nas_kd_cell", big)]
    for method, teacher in methods:
        scfg = SearchConfig(epochs=search_epochs, arch_warmup=1 if search_epochs > 1 else 0, width=8, cells=3,
                            nodes=2, ops=OPS, seed=seed)
        load0 = os.getloadavg()[0]
        found = darts_search(data.train, shape, k, scfg, teacher=teacher)
        width = fit_width(found.genotype, target, shape, k)
        torch.manual_seed(seed)
        net = create_model("nas_cellnet", genotype=found.genotype, num_classes=k, input_shape=list(shape), width=width)
        techs = [KnowledgeDistillation(teacher, temperature=4.0, alpha=0.5)] if teacher is not None else []
        net, s = train(net, techs)
        out[method] = {"test_accuracy": _acc(net, data.test), "macs": count_macs(net, x1).total, "train_seconds": s,
                       "search_seconds": found.seconds, "width": width, "genotype": found.genotype,
                       "loadavg_1min": (load0 + os.getloadavg()[0]) / 2}
    return out


def main() -> None:
    p = base_parser("nas", __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--search-epochs", type=int, default=4)
    p.add_argument("--teacher", choices=["hand", "big"], default="hand",
                   help="NAS-KD's teacher: the trained hand CNN, or a width-64 CNN (4x the MACs; "
                        "then the hand CNN trained with KD from it is reported too and darts_cell is skipped)")
    args = p.parse_args()
    torch.set_num_threads(1)  # the machine is shared; more threads oversubscribe it
    seeds = 1 if args.quick else args.seeds
    epochs, search_epochs = (1, 1) if args.quick else (args.epochs, args.search_epochs)
    t0, runs = time.perf_counter(), []
    for s in range(seeds):
        runs.append(run_one(s, epochs, search_epochs, args.teacher))
        done = ", ".join(f"{m} acc {r['test_accuracy']:.4f} macs {r['macs']}" for m, r in runs[-1].items())
        print(f"seed {s}: {done}", flush=True)
    extra = {"data": "mnist1d (5000 samples: 3601 train, 399 val, 1000 test)", "epochs": epochs,
             "search_epochs": search_epochs, "search": "first-order DARTS, supernet width 8, 3 cells x 2 nodes",
             "ops": OPS, "threads": 1, "nas_kd_teacher": "mnist1d_cnn width 64" if args.teacher == "big"
             else "the trained hand_cnn"}
    units = {"test_accuracy": "fraction", "macs": "MACs per sample", "train_seconds": "s", "search_seconds": "s"}
    rows = []
    for method in runs[0]:
        for metric in units:
            rows.append(row(method, metric, [r[method][metric] for r in runs], units=units[metric], **extra))
        if method not in ("hand_cnn", "hand_cnn_kd", "teacher_w64"):
            rows.append(row(method, "accuracy_minus_hand_cnn",
                            [r[method]["test_accuracy"] - r["hand_cnn"]["test_accuracy"] for r in runs],
                            units="fraction", **extra))
            if "hand_cnn_kd" in runs[0]:
                rows.append(row(method, "accuracy_minus_hand_cnn_kd",
                                [r[method]["test_accuracy"] - r["hand_cnn_kd"]["test_accuracy"] for r in runs],
                                units="fraction", **extra))
            rows.append({"method": method, "metric": "found", "mean": float("nan"), "std": float("nan"),
                         "n": len(runs), "genotypes": [r[method]["genotype"] for r in runs],
                         "widths": [r[method]["width"] for r in runs],
                         "loadavg_1min": [r[method]["loadavg_1min"] for r in runs]})
    print_table([r for r in rows if r["metric"] != "found"],
                f"NAS on MNIST-1D, {seeds} seed(s) ({time.perf_counter() - t0:.0f} s)")
    write_rows(rows, args.out, "nas")


if __name__ == "__main__":
    main()
