"""leandl structured pruning vs Torch-Pruning vs torch.nn.utils.prune, side by side.

Part A (accuracy): ResNet-20 (base width ``--width``, default 32, so that latency is more than
per-op overhead) on the embedded digits set (8x8), trained densely per seed, then every method
prunes to the same MACs target (50 % kept), fine-tunes with the same budget and is evaluated on
all 718 held-out samples (val + test; the benchmark never uses val: 359 test samples alone
move a paired difference by ~0.5 points); batch-64 eager CPU latency (2 threads, variants
interleaved call by call, medians) is reported beside it. torch.nn.utils.prune (unstructured,
same fraction of weights) keeps dense latency.

Latency-budget targets (``{"latency": f}``, f a fraction of the dense latency at b64, 2 threads)
take their budget from a reference, measured in 40 interleaved rounds with the dense model:
uniform (layer-wise) L1 at 50 % of the MACs with leandl's defaults, and the same rounded to
multiples of 8. Each is checked against its budget at prune time, and after fine-tuning against
its reference's latency (a separate interleaved comparison), MACs and accuracy (same seed, same
dense model; 95 % confidence interval over seeds). At 0.9x the uniform model's latency it is
compared at equal accuracy on latency; at 1.0x at equal latency on accuracy. (Uniform L1 at
10 % of the MACs is not used: it reaches every group's floor, max_ratio=0.9, so a budget equal to
its latency can only reproduce it.)

Part B (speed): ResNet-56 at 32x32 pruned to 50 % MACs with l1 / global, widths rounded to
multiples of 8 and of 16: speed-up at batch 64, 2 threads, variants interleaved in short rounds.

    python benchmarks/prune_vs_torch_pruning.py [--seeds 3] [--quick]
"""

from __future__ import annotations

import copy
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

import leandl  # noqa: E402
from leandl.data import load_data  # noqa: E402
from leandl.data.loader import make_loader  # noqa: E402
from leandl.measure import LatencyComparison, compare_latency, count_macs  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.train.config import TrainConfig  # noqa: E402
from leandl.train.trainer import Trainer  # noqa: E402

NAME = "prune_vs_torch_pruning"
REF = "leandl l1 uniform"  # layer-wise L1 at 50 % of the MACs, leandl's defaults (no rounding)
REF_R8 = "leandl l1 uniform r8"  # the same with widths rounded to multiples of 8
# latency-budget variants: label -> (reference, budget as a multiple of the reference's latency, criterion)
BUDGETS = {
    "leandl l1 latency-budget (0.9x uniform)": (REF, 0.9, "l1"),
    "leandl l1 latency-budget (1.0x uniform)": (REF, 1.0, "l1"),
    "leandl l1 latency-budget (1.0x uniform r8)": (REF_R8, 1.0, "l1"),
    "leandl taylor latency-budget (1.0x uniform r8)": (REF_R8, 1.0, "taylor"),
}


def target_of(label: str) -> str:
    """The pruning target a variant was given (for the table)."""
    if label in BUDGETS:
        ref, scale, _ = BUDGETS[label]
        return f"latency={scale:g}x {ref}'s"
    if "unstructured" in label:
        return "50 % of weights"
    return "none" if label == "dense" else "macs=0.5"


def ci95(values: list[float]) -> tuple[float, float]:
    """95 % confidence interval of the mean (Student t; (nan, nan) below two values)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    from scipy.stats import t

    m, sd = statistics.fmean(values), statistics.stdev(values)
    h = float(t.ppf(0.975, len(values) - 1)) * sd / len(values) ** 0.5
    return m - h, m + h


def accuracy(model: nn.Module, data) -> float:
    """Accuracy (%) on every held-out sample: val + test (the benchmark never uses val)."""
    model.eval()
    hit = n = 0
    with torch.no_grad():
        for x, y, *_ in (b for split in (data.val, data.test) for b in make_loader(split, 256, shuffle=False)):
            hit += int((model(x).argmax(1) == y).sum())
            n += len(y)
    return 100.0 * hit / n


def fit(model: nn.Module, data, epochs: int, lr: float, seed: int) -> nn.Module:
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=lr, progress=False, checkpoint_every=0,
                      seed=seed)
    return Trainer(model, cfg, train_data=data.train, val_data=None,
                   num_classes=data.num_classes).fit().model


def tp_magnitude(model: nn.Module, x: torch.Tensor, macs_goal: float) -> nn.Module:
    """Torch-Pruning 1.6.1 MagnitudePruner (L1, layer-wise), ratio bisected to the MACs goal."""
    import torch_pruning as tp

    base = count_macs(model, x).total
    lo, hi, best = 0.0, 0.95, None
    for _ in range(8):
        r = (lo + hi) / 2
        m = copy.deepcopy(model)
        tp.pruner.MagnitudePruner(m, x, importance=tp.importance.MagnitudeImportance(p=1),
                                  pruning_ratio=r, ignored_layers=[m.head.fc]).step()
        frac = count_macs(m, x).total / base
        if best is None or abs(frac - macs_goal) < abs(best[1] - macs_goal):
            best = (m, frac)
        lo, hi = (r, hi) if frac > macs_goal else (lo, r)
    return best[0]


def torch_unstructured(model: nn.Module, amount: float) -> list[tuple[nn.Module, str]]:
    import torch.nn.utils.prune as tprune

    params = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=amount)
    return params


def latency(models: dict[str, nn.Module], shape, rounds: int) -> LatencyComparison:
    """Batch-64 latency, 2 threads, variants interleaved in short rounds (1 warm-up + 3 calls)."""
    return compare_latency(models, torch.randn(64, *shape), rounds=rounds, warmup=1, repeats=3,
                           threads=2)


def part_a(seed: int, args, rows_acc: dict, rows_lat: dict, notes: dict) -> None:
    quick = args.quick
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    data = load_data("digits", seed=seed)
    shape = data.input_shape
    x1 = torch.randn(1, *shape)
    dense = create_model("resnet20", num_classes=10, input_shape=shape, width=args.width)
    dense = fit(dense, data, 3 if quick else 15, 0.05, seed)
    ft = 1 if quick else 5
    batches = [(x, y) for (x, y, *_), _ in zip(make_loader(data.train, 64, shuffle=True), range(8))]
    variants: dict[str, nn.Module] = {"dense": dense}
    for label, crit, scope, r in [("leandl l1 global r8", "l1", "global", 8),
                                  ("leandl fpgm global r8", "fpgm", "global", 8),
                                  ("leandl taylor global r8", "taylor", "global", 8),
                                  (REF, "l1", "layerwise", None),
                                  (REF_R8, "l1", "layerwise", 8)]:
        m = copy.deepcopy(dense)
        leandl.prune_(m, x1, criterion=crit, target={"macs": 0.5}, scope=scope, round_to=r,
                      batches=batches)
        variants[label] = m
    variants["torch-pruning magnitude"] = tp_magnitude(copy.deepcopy(dense), x1, 0.5)
    un = copy.deepcopy(dense)
    params = torch_unstructured(un, 0.5)
    variants["torch.nn.utils.prune 50% unstructured"] = un
    rounds = 4 if quick else 40
    probe = latency({k: variants[k] for k in ("dense", REF, REF_R8)}, shape, rounds)
    for label, (ref, scale, crit) in BUDGETS.items():
        budget = scale * statistics.median(u / d for u, d in zip(probe.round_ms[ref], probe.round_ms["dense"]))
        lb = copy.deepcopy(dense)
        rep = leandl.prune_(lb, x1, criterion=crit, round_to=8, batches=batches,
                            target={"latency": budget, "batch_size": 64, "threads": 2})
        variants[label] = lb
        notes.setdefault(f"budget:{label}", []).append(budget)
        notes.setdefault(f"measured:{label}", []).append(rep.latency["measured_fraction"])
    for label, m in variants.items():
        if label != "dense":
            variants[label] = fit(m, data, ft, 0.01, seed)
    import torch.nn.utils.prune as tprune
    for mod, p in params:
        tprune.remove(mod, p)
    for label, m in variants.items():
        rows_acc.setdefault(label, []).append(accuracy(m, data))
        notes.setdefault(f"macs:{label}", []).append(count_macs(m, x1).total)
    res = latency(variants, shape, 4 if quick else 20)
    torch.set_num_threads(1)
    for label, ms in res.median_ms.items():
        rows_lat.setdefault(label, []).append(ms)
    for ref in (REF, REF_R8):
        # next to its reference: a separate interleaved comparison of a few models (steadier than 15)
        labels = [k for k, v in BUDGETS.items() if v[0] == ref]
        pair = latency({ref: variants[ref], **{k: variants[k] for k in labels}}, shape, rounds)
        for label in labels:
            ratio = statistics.median(a / b for a, b in zip(pair.round_ms[label], pair.round_ms[ref]))
            notes.setdefault(f"vs_ref:{label}", []).append(ratio)
            notes.setdefault(f"acc_gain:{label}", []).append(rows_acc[label][-1] - rows_acc[ref][-1])
            notes.setdefault(f"macs_ratio:{label}", []).append(notes[f"macs:{label}"][-1] / notes[f"macs:{ref}"][-1])


def part_b(quick: bool) -> dict[str, dict[str, object]]:
    """ResNet-56 speed-ups at 50 % MACs (l1, global) with widths in multiples of 8 and of 16."""
    torch.manual_seed(0)
    m = create_model("resnet56", num_classes=10, input_shape=(3, 32, 32)).eval()
    variants: dict[str, nn.Module] = {"dense": m}
    kept = {}
    for r in (8, 16):
        p = copy.deepcopy(m)
        rep = leandl.prune_(p, torch.randn(1, 3, 32, 32), criterion="l1", target={"macs": 0.5},
                            scope="global", round_to=r)
        variants[f"r{r}"] = p.eval()
        kept[f"r{r}"] = rep.achieved["macs"]
    res = compare_latency(variants, torch.randn(64, 3, 32, 32), rounds=4 if quick else 20,
                          warmup=1, repeats=2, threads=2)
    return {k: {"macs_kept": kept[k], "dense_ms": res.median_ms["dense"],
                "pruned_ms": res.median_ms[k], "speedup": res.speedup_median[k],
                "speedup_rounds": res.speedup[k]} for k in kept}


def main() -> None:
    p = base_parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=32, help="ResNet-20 base width for part A")
    args = p.parse_args()
    acc: dict[str, list[float]] = {}
    lat: dict[str, list[float]] = {}
    notes: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        part_a(seed, args, acc, lat, notes)
    rows = []
    for label in acc:
        rows.append(row(label, "heldout_accuracy", acc[label], units="%", model=f"resnet20 w{args.width}",
                        data="digits 8x8, val+test (718)", target=target_of(label)))
        rows.append(row(label, "latency_b64", lat[label], units="ms", batch_size=64, threads=2,
                        backend="eager cpu"))
        rows.append(row(label, "macs", notes[f"macs:{label}"], units="MACs (batch 1)"))
    for label, (ref, scale, _) in BUDGETS.items():
        rows.append(row(label, "budget", notes[f"budget:{label}"], units="fraction of dense latency",
                        note=f"{scale:g} x ({ref} / dense), b64, 2 threads, 40 interleaved rounds"))
        rows.append(row(label, "measured_at_prune_time", notes[f"measured:{label}"],
                        units="fraction of dense latency"))
        rows.append(row(label, "landing", [m / b for m, b in zip(notes[f"measured:{label}"], notes[f"budget:{label}"])],
                        units="x budget", note="measured at prune time / budget (within 5 % is 0.95-1.05)"))
        rows.append(row(label, "latency_vs_reference", notes[f"vs_ref:{label}"], units="x",
                        note=f"median per-round ratio to {ref}, 40 interleaved rounds, after fine-tuning"))
        rows.append(row(label, "macs_vs_reference", notes[f"macs_ratio:{label}"], units="x",
                        note=f"MACs / {ref}'s"))
        gain = notes[f"acc_gain:{label}"]
        lo, hi = ci95(gain)
        rows.append(row(label, "accuracy_vs_reference", gain, units="points", ci95=[lo, hi],
                        note=f"held-out accuracy minus {ref}'s, same seed and dense model"))
    for key, b in part_b(args.quick).items():
        rows.append(row(f"resnet56 l1 global {key}", "speedup_b64", b["speedup_rounds"], units="x",
                        batch_size=64, threads=2, macs_kept=b["macs_kept"], dense_ms=b["dense_ms"],
                        pruned_ms=b["pruned_ms"], median=b["speedup"],
                        timing="20 interleaved rounds of 1 warm-up + 2 timed calls, steady glibc heap"))
    print_table(rows, f"{NAME} (seeds={args.seeds}, quick={args.quick})")
    write_rows(rows, args.out, NAME)


if __name__ == "__main__":
    main()
