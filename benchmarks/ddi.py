"""DDI input-dependent skipping gates vs the static early exits of ``mnist1d-exits`` at 50 % MACs.

Both start from the same trained backbone per seed, built and trained exactly as the built-in
``mnist1d-exits`` recipe's ``train`` stage (``mnist1d_cnn`` width 32, blocks 3; settings read
from the recipe file), then spend the same 5 epochs:

- ``exits_static``: the recipe's ``exits`` stage (exits after layer1.0/1/2, MLP heads, frozen
  backbone, one-for-all KD, geometric thresholds calibrated on the validation split to 50 %);
- ``ddi_gates``: gates on the 6 shape-preserving blocks (skip, or 1/4, 1/2, 3/4, all channels)
  trained jointly with the network under ``ddi_budget`` (target 0.5, weight 10), cost bias
  calibrated on the validation split to 50 %;
- ``ddi_gates_scratch``: the gated network trained from scratch for the same 15 epochs as
  train + exits, the penalty's target ramped from 1 to 0.5 over the first half;
- ``backbone``: the trained backbone, full MACs.

Reported (mean +- std over seeds): test accuracy, mean MACs per input (fraction of the
backbone's), and wall clock over the 1000 test inputs at batch 1000, 1 thread, the three
variants timed in the same alternating rounds (plain backbone, early-exit inference dropping
exited rows, gated inference partitioning rows by their gate choice). Training uses 1 thread
(the machine is shared; more threads oversubscribe it). The load average is recorded per row.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

from leandl.data import load_data, make_loader  # noqa: E402
from leandl.dynamic import (  # noqa: E402
    attach_exits,
    backbone_macs,
    calibrate_budget,
    collect_exit_outputs,
    exit_costs,
    freeze_backbone_,
    predict_in_batches,
    simulate,
)
from leandl.dynamic.ddi_gates import DDIBudget, attach_ddi_gates, strip_gates  # noqa: E402
from leandl.dynamic.policy import confidences  # noqa: E402
from leandl.measure import compare_latency  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.recipes.stages.ddi import evaluate_gated  # noqa: E402
from leandl.registry import TECHNIQUES  # noqa: E402
from leandl.train import TrainConfig, Trainer  # noqa: E402

METHODS = ("backbone", "exits_static", "ddi_gates", "ddi_gates_scratch")
RECIPE = Path(__file__).resolve().parents[1] / "src/leandl/recipes/builtin/mnist1d-exits.yaml"


def _fit(model, data, cfg, techniques):
    return Trainer(model, cfg, train_data=data.train, val_data=data.val, num_classes=data.num_classes,
                   techniques=techniques).fit().model


def _tensors(split):
    xs, ys = zip(*[(split[i][0], split[i][1]) for i in range(len(split))], strict=True)
    return torch.stack(xs), torch.as_tensor([int(y) for y in ys])


def run_one(seed: int, rec: dict, train_epochs: int, stage_epochs: int, rounds: int) -> dict:
    d, ex = rec["defaults"], rec["stages"][1]
    data = load_data(rec["data"]["name"], seed=seed)
    shape = tuple(data.input_shape)
    torch.manual_seed(seed)
    net = create_model(rec["model"]["name"], num_classes=data.num_classes, input_shape=shape, **rec["model"]["kwargs"])

    def cfg(epochs: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=rec["data"]["batch_size"], optimizer=d["optimizer"], lr=d["lr"],
                           weight_decay=d["weight_decay"], schedule=d["schedule"], seed=seed, progress=False,
                           checkpoint_every=0)

    t0 = time.perf_counter()
    net = _fit(net, data, cfg(train_epochs), [])
    train_s = time.perf_counter() - t0
    x_val, _ = _tensors(data.val)
    x_test, y_test = _tensors(data.test)
    bs = ex["timing_batch_size"]

    # the recipe's exits stage
    me = attach_exits(copy.deepcopy(net), ex["after"], ex["head"], input_shape=shape, pool=ex["pool"],
                      hidden=ex["hidden"])
    freeze_backbone_(me)
    tech = [TECHNIQUES.get(t["name"])(**{k: v for k, v in t.items() if k != "name"}) for t in ex["techniques"]]
    t0 = time.perf_counter()
    me = _fit(me, data, cfg(stage_epochs), tech)
    exits_s = time.perf_counter() - t0
    me.eval()
    costs, full = exit_costs(me, shape), backbone_macs(me, shape)
    val_z, val_y = collect_exit_outputs(me, make_loader(data.val, 512, shuffle=False))
    test_z, test_yy = collect_exit_outputs(me, make_loader(data.test, 512, shuffle=False))
    pol = calibrate_budget(val_z, val_y, costs, ex["select_budget"] * full, method=ex["calibration"])
    correct = torch.stack([z.argmax(-1) == test_yy for z in test_z])
    sim = simulate(confidences(test_z), correct, pol.thresholds, costs)
    ee = predict_in_batches(me, x_test, bs, pol.thresholds)
    exits_acc = float((ee.logits.argmax(-1) == y_test).float().mean())

    # DDI gates on a copy of the same backbone, same number of epochs
    gated = attach_ddi_gates(copy.deepcopy(net), input_shape=shape)
    t0 = time.perf_counter()
    gated = _fit(gated, data, cfg(stage_epochs), [DDIBudget(target=ex["select_budget"], weight=10.0)])
    ddi_s = time.perf_counter() - t0
    res = evaluate_gated(gated, x_val, x_test, y_test, ex["select_budget"], bs, rounds=1, threads=1)

    # DDI gates trained jointly with the network from scratch, as many epochs as train + exits
    torch.manual_seed(seed)
    scratch = attach_ddi_gates(create_model(rec["model"]["name"], num_classes=data.num_classes, input_shape=shape,
                                            **rec["model"]["kwargs"]), input_shape=shape)
    t0 = time.perf_counter()
    scratch = _fit(scratch, data, cfg(train_epochs + stage_epochs),
                   [DDIBudget(target=ex["select_budget"], weight=10.0, ramp=0.5)])
    scratch_s = time.perf_counter() - t0
    res_s = evaluate_gated(scratch, x_val, x_test, y_test, ex["select_budget"], bs, rounds=1, threads=1)

    with torch.no_grad():
        net.eval()
        full_acc = float((net(x_test).argmax(-1) == y_test).float().mean())
    plain = strip_gates(gated).eval()
    gated.eval()

    def chunks(model):
        @torch.no_grad()
        def fn(x):
            for i in range(0, x.shape[0], bs):
                model(x[i:i + bs])
        return fn

    load = os.getloadavg()[0]
    scratch.eval()
    variants = {"backbone": chunks(plain), "exits_static": lambda x: predict_in_batches(me, x, bs, pol.thresholds),
                "ddi_gates": chunks(gated), "ddi_gates_scratch": chunks(scratch)}
    cmp = compare_latency(variants, x_test, rounds=rounds, warmup=1, repeats=3, threads=1)
    load = (load + os.getloadavg()[0]) / 2
    return {
        "backbone": {"test_accuracy": full_acc, "macs_fraction": 1.0, "wall_ms": cmp.median_ms["backbone"],
                     "speedup_vs_backbone": 1.0, "train_seconds": train_s},
        "exits_static": {"test_accuracy": exits_acc, "macs_fraction": sim["expected_macs"] / full,
                         "wall_ms": cmp.median_ms["exits_static"],
                         "speedup_vs_backbone": cmp.speedup_median["exits_static"], "train_seconds": exits_s},
        "ddi_gates": {"test_accuracy": res["accuracy"], "macs_fraction": res["macs_fraction"],
                      "macs_fraction_p10": res["macs_fraction_p10"], "macs_fraction_p90": res["macs_fraction_p90"],
                      "wall_ms": cmp.median_ms["ddi_gates"], "speedup_vs_backbone": cmp.speedup_median["ddi_gates"],
                      "train_seconds": ddi_s},
        "ddi_gates_scratch": {"test_accuracy": res_s["accuracy"], "macs_fraction": res_s["macs_fraction"],
                              "macs_fraction_p10": res_s["macs_fraction_p10"],
                              "macs_fraction_p90": res_s["macs_fraction_p90"],
                              "wall_ms": cmp.median_ms["ddi_gates_scratch"],
                              "speedup_vs_backbone": cmp.speedup_median["ddi_gates_scratch"],
                              "train_seconds": scratch_s},
        "ddi_block_run_share": res["block_run_share"], "ddi_block_mean_fraction": res["block_mean_fraction"],
        "scratch_block_run_share": res_s["block_run_share"],
        "scratch_block_mean_fraction": res_s["block_mean_fraction"],
        "loadavg_1min": load,
    }


def main() -> None:
    p = base_parser("ddi", __doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(1)
    rec = yaml.safe_load(RECIPE.read_text())
    seeds = 1 if args.quick else args.seeds
    train_epochs = 1 if args.quick else rec["defaults"]["epochs"]
    stage_epochs = 1 if args.quick else rec["stages"][1]["epochs"]
    t0 = time.perf_counter()
    runs = []
    for s in range(seeds):
        runs.append(run_one(s, rec, train_epochs, stage_epochs, 2 if args.quick else args.rounds))
        print(f"seed {s}: " + ", ".join(f"{m} acc {runs[-1][m]['test_accuracy']:.4f} macs "
                                        f"{runs[-1][m]['macs_fraction']:.3f} {runs[-1][m]['wall_ms']:.1f} ms"
                                        for m in METHODS), flush=True)
    extra = {"data": "mnist1d (5000 samples, test 1000)", "model": "mnist1d_cnn width 32 blocks 3",
             "budget": "50 % of backbone MACs (calibrated on the val split)", "batch_size": 1000, "threads": 1,
             "train_epochs": train_epochs, "stage_epochs": stage_epochs,
             "loadavg_1min": [r["loadavg_1min"] for r in runs]}
    units = {"test_accuracy": "fraction", "macs_fraction": "fraction of backbone MACs per input (mean)",
             "wall_ms": "ms per pass over 1000 test inputs (median)",
             "speedup_vs_backbone": "x (median of round ratios)",
             "train_seconds": "s", "macs_fraction_p10": "fraction", "macs_fraction_p90": "fraction"}
    rows = []
    for method in METHODS:
        for metric in runs[0][method]:
            rows.append(row(method, metric, [r[method][metric] for r in runs], units=units[metric], **extra))
    rows.append(row("ddi_gates", "accuracy_minus_exits_static",
                    [r["ddi_gates"]["test_accuracy"] - r["exits_static"]["test_accuracy"] for r in runs],
                    units="accuracy points (fraction)", **extra))
    rows.append(row("ddi_gates", "wall_ms_ratio_exits_over_ddi",
                    [r["exits_static"]["wall_ms"] / r["ddi_gates"]["wall_ms"] for r in runs], units="x", **extra))
    rows.append(row("ddi_gates_scratch", "accuracy_minus_exits_static",
                    [r["ddi_gates_scratch"]["test_accuracy"] - r["exits_static"]["test_accuracy"] for r in runs],
                    units="accuracy points (fraction)", **extra))
    rows.append(row("ddi_gates_scratch", "wall_ms_ratio_exits_over_ddi",
                    [r["exits_static"]["wall_ms"] / r["ddi_gates_scratch"]["wall_ms"] for r in runs], units="x",
                    **extra))
    for r in runs:
        for method, key in (("ddi_gates", "ddi"), ("ddi_gates_scratch", "scratch")):
            rows.append({"method": method, "metric": "per_block", "mean": float("nan"), "std": float("nan"), "n": 1,
                         "run_share": r[f"{key}_block_run_share"], "mean_fraction": r[f"{key}_block_mean_fraction"]})
    print_table([r for r in rows if r["metric"] != "per_block"],
                f"DDI gates vs static exits at 50 % MACs, MNIST-1D, {seeds} seed(s) ({time.perf_counter() - t0:.0f} s)")
    write_rows(rows, args.out, "ddi")


if __name__ == "__main__":
    main()
