"""Issue 20, part A: the techniques that were absent, each against its natural baseline, >= 3 seeds.

Groups (``--groups`` runs a subset and merges into the existing JSON):

* ``amp``: bf16 vs fp32 training of digits_cnn on digits (10 epochs) and the bf16/fp32 step-time
  ratio; ``benchmarks/amp.py`` has the fuller comparison with fp16 and loss scaling.
* ``softer``: SRFP / ASRFP vs SFP / ASFP, 50 % of the channels of mnist1d_cnn (width 16) on
  MNIST-1D (3,000 samples), 15 epochs, accuracy of the physically pruned model.
* ``psg``: E2-Train PSG vs signSGD on the full 8-bit gradient (same simulated arithmetic, no
  predictor) vs plain fp32 SGD; digits_cnn on digits, 10 epochs.
* ``ice``: CE + ICE vs CE; digits_cnn on digits, 10 epochs; test accuracy and leave-one-out
  Recall@1 of the test embeddings (cosine, the classifier's input).
* ``psg_mnist1d`` / ``ice_mnist1d``: the same two comparisons on MNIST-1D (mnist1d_cnn width 16,
  15 epochs), where digits' ~99 % leaves no room.
* ``condense``: condensenet_tiny on digits, 15 epochs: learned group convolution (converted)
  vs the same groups fixed at random from the start (a standard group conv) vs the dense 1x1.
* ``groupwise``: digits_cnn teacher (15 epochs), then 2-bit weights from 100 training images:
  round-to-nearest per tensor, round-to-nearest with 4 groups, joint KD only, two-stage KD.
* ``early_bird``: the early-bird search (l1_bn + early_bird, ratio 0.5) on MNIST-1D in fp32 vs
  bf16 autocast: epoch of the ticket, ticket distance to the fp32 ticket, search seconds.

Every run uses one thread (``torch.set_num_threads(1)``); the load average is recorded with timings.
Usage: ``python benchmarks/issue20_new.py [--seeds 3] [--groups softer,psg]``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from _common import base_parser, mean_std, print_table, row, write_rows  # noqa: E402
from _issue20_common import acc, build, digits, mnist1d, tech  # noqa: E402

GROUPS = ("amp", "softer", "psg", "psg_mnist1d", "ice", "ice_mnist1d", "condense", "groupwise", "early_bird")


def _versus(_group: str, name: str, base: str, a: list[float], b: list[float], note: str, **kw: Any) -> dict:
    """A paired difference row with an automatic verdict and a written explanation."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean, std = mean_std(diffs)
    verdict = "positive" if mean > max(std, 1e-9) else "negative" if mean < -max(std, 1e-9) else "null"
    return row(f"{name} - {base}", "test_accuracy_difference", diffs, units="fraction (paired by seed)",
               verdict=verdict, finding=f"{verdict} ({mean:+.4f} +- {std:.4f}, n={len(diffs)}): {note}", **kw)


def _macs(model: torch.nn.Module, data: Any) -> float:
    from leandl.measure import count_macs

    return float(count_macs(model.eval(), data.test.inputs[:1]).total)


# ---------------------------------------------------------------- groups
def g_softer(seeds: list[int], quick: bool) -> list[dict]:
    epochs = 3 if quick else 15
    cfgs = {"sfp": ("soft_pruning", False), "srfp": ("softer_pruning", False),
            "asfp": ("soft_pruning", True), "asrfp": ("softer_pruning", True)}
    res: dict[str, list[float]] = {k: [] for k in cfgs}
    macs: dict[str, float] = {}
    for s in seeds:
        data = mnist1d(s)
        for k, (name, asym) in cfgs.items():
            model = build("mnist1d_cnn", s, data, width=16)
            fit(model, data, epochs, s, [tech(name, ratio=0.5, asymptotic=asym)])
            res[k].append(acc(_LAST["model"], data.test))  # the physically pruned model
            macs[k] = _macs(_LAST["model"], data)
    common = {"group": "softer", "dataset": "mnist1d (3000 samples)", "model": "mnist1d_cnn width 16",
              "ratio": 0.5, "epochs": epochs}
    rows = [row(k, "test_accuracy", v, units="fraction", macs=macs[k], **common) for k, v in res.items()]
    note = ("SRFP decays the selected filters and their BN weight/bias by alpha_t = 1 - t/T instead of zeroing "
            "them. A first run decayed the conv filters only and lost 57 +- 18 points to SFP: BN with batch "
            "statistics normalises a per-channel filter scale away, so nothing faded while training and the whole "
            "change landed at the final cut; decaying the BN affine fixed it. The paper's gain is small (ImageNet "
            "+1.6 top-1 vs SFP) and its cost is slower convergence, so on 15 epochs of MNIST-1D expect parity. "
            "The asymptotic pair is noisy because ASFP's rate is still rising in the last epochs, leaving "
            "the network almost no epochs at the final rate before the cut (ASFP 66 +- 20 % over 3 seeds "
            "in the first run); ASRFP's gradual fade softens that cut")
    rows.append(_versus("softer", "srfp", "sfp", res["srfp"], res["sfp"], note, **common))
    rows.append(_versus("softer", "asrfp", "asfp", res["asrfp"], res["asfp"], note, **common))
    return rows


_LAST: dict[str, Any] = {}


def fit(model, data, epochs, seed, techniques=(), **kw):
    """Train (final-epoch weights); the model the trainer returns (pruning and condensing replace it
    at fit_end) and its metrics are kept in ``_LAST``."""
    from leandl.train.config import TrainConfig
    from leandl.train.trainer import Trainer

    train = kw.pop("train", data.train)
    cfg = TrainConfig(epochs=epochs, batch_size=kw.pop("batch_size", 64), optimizer=kw.pop("optimizer", "adam"),
                      lr=kw.pop("lr", 3e-3), weight_decay=kw.pop("weight_decay", 1e-4), schedule="cosine", seed=seed,
                      progress=False, checkpoint_every=0, log_every=0, **kw)
    res = Trainer(model, cfg, train_data=train, val_data=None,
                  num_classes=data.num_classes, techniques=list(techniques)).fit()
    _LAST["model"], _LAST["metrics"] = res.model.eval(), res.metrics
    return res.model.eval()


def _task(name: str, seed: int) -> tuple[Any, str, dict[str, Any], str]:
    """(data, model name, model kwargs, dataset label) of a task."""
    if name == "mnist1d":
        return mnist1d(seed), "mnist1d_cnn", {"width": 16}, "mnist1d (3000 samples)"
    return digits(seed), "digits_cnn", {}, "digits"


def g_psg(seeds: list[int], quick: bool, task: str = "digits") -> list[dict]:
    epochs = 2 if quick else (15 if task == "mnist1d" else 10)
    group = "psg" if task == "digits" else f"psg_{task}"
    runs = {"sgd_fp32": ([], {"optimizer": "sgd", "lr": 0.05}),
            "signsgd_8bit": ([lambda: tech("psg", threshold=1e9)], {"optimizer": "sgd", "lr": 1e-3}),
            "psg": ([lambda: tech("psg")], {"optimizer": "sgd", "lr": 1e-3})}
    if task == "mnist1d":  # the paper's absolute threshold predicts ~90 % of elements here: try a higher one
        runs["psg_threshold_1e-2"] = ([lambda: tech("psg", threshold=1e-2)], {"optimizer": "sgd", "lr": 1e-3})
    res: dict[str, list[float]] = {k: [] for k in runs}
    extra: dict[str, dict[str, list[float]]] = {k: {} for k in runs}
    secs: dict[str, list[float]] = {k: [] for k in runs}
    for s in seeds:
        data, arch, arch_kw, label = _task(task, s)
        for k, (techs, opt) in runs.items():
            model = build(arch, s, data, **arch_kw)
            t0 = time.perf_counter()
            fit(model, data, epochs, s, [f() for f in techs], **opt)
            secs[k].append(time.perf_counter() - t0)
            res[k].append(acc(_LAST["model"], data.test))
            for key in ("psg_predicted_fraction", "psg_sign_agreement_predicted", "psg_sign_agreement_rest"):
                if key in _LAST["metrics"]:
                    extra[k].setdefault(key, []).append(_LAST["metrics"][key])
    common = {"group": group, "dataset": label, "model": arch, "epochs": epochs,
              "optimizer": "sgd momentum 0.9 (sign methods lr 1e-3, fp32 lr 0.05)", "threads": 1}
    rows = [row(k, "test_accuracy", v, units="fraction", **common) for k, v in res.items()]
    rows += [row(k, "train_seconds", v, units="s (simulation: PSG runs 2 passes per step)",
                 load_avg_1m=os.getloadavg()[0], **common) for k, v in secs.items()]
    for k, d in extra.items():
        rows += [row(k, key, v, units="fraction", **common) for key, v in d.items()]
    note = ("the paper's claim is parity with the full low-precision sign gradient while the "
            "predicted fraction of gradient elements skips its full-precision backward (an energy "
            "proxy; the simulation itself is slower)")
    if task == "mnist1d":
        note += ("; here the 4-bit MSB predictor's sign agrees with the full gradient on only ~61 % of the "
                 "elements it decides (77 % on digits): truncating 8-bit codes to their top 4 bits zeroes every "
                 "value below 1/8 of the tensor's max, and the absolute threshold 5e-5 (tuned for CIFAR "
                 "ResNet-74) lets the predictor decide ~90 % of the elements; a 200x higher threshold "
                 "(psg_threshold_1e-2 rows) hands fewer elements to it but does not close the gap")
    rows.append(_versus(group, "psg", "signsgd_8bit", res["psg"], res["signsgd_8bit"], note, **common))
    if "psg_threshold_1e-2" in res:
        rows.append(_versus(group, "psg_threshold_1e-2", "signsgd_8bit", res["psg_threshold_1e-2"],
                            res["signsgd_8bit"], "fewer elements from the predictor", **common))
    rows.append(_versus(group, "psg", "sgd_fp32", res["psg"], res["sgd_fp32"],
                        "8-bit sign updates against fp32 SGD: E2-Train reports ~1-2 points lost on CIFAR-10", **common))
    return rows


@torch.no_grad()
def _recall_at_1(model: torch.nn.Module, split: Any) -> float:
    feats: list[torch.Tensor] = []
    fc = model.get_classifier()
    h = fc.register_forward_pre_hook(lambda m, a: feats.append(a[0].flatten(1)))
    model.eval()(split.inputs)
    h.remove()
    f = F.normalize(feats[0], dim=1)
    sim = f @ f.t()
    sim.fill_diagonal_(-2.0)
    return float((split.targets[sim.argmax(1)] == split.targets).float().mean())


def g_ice(seeds: list[int], quick: bool, task: str = "digits") -> list[dict]:
    epochs = 2 if quick else (15 if task == "mnist1d" else 10)
    group = "ice" if task == "digits" else f"ice_{task}"
    variants = {"ce": None, "ce+ice": {}}
    if task == "mnist1d":  # the defaults (scale 16, weight 1) were not tuned by the paper's numbers: a gentler pair
        variants["ce+ice(w0.1,s4)"] = {"weight": 0.1, "scale": 4.0}
    res: dict[str, list[float]] = {k: [] for k in variants}
    rec: dict[str, list[float]] = {k: [] for k in variants}
    for s in seeds:
        data, arch, arch_kw, label = _task(task, s)
        for k, kw in variants.items():
            model = build(arch, s, data, **arch_kw)
            fit(model, data, epochs, s, [tech("ice", **kw)] if kw is not None else [])
            res[k].append(acc(model, data.test))
            rec[k].append(_recall_at_1(model, data.test))
    common = {"group": group, "dataset": label, "model": arch, "epochs": epochs, "ice": "scale 16, weight 1"}
    rows = [row(k, "test_accuracy", v, units="fraction", **common) for k, v in res.items()]
    rows += [row(k, "recall_at_1", v, units="fraction (test, leave-one-out, cosine)", **common) for k, v in rec.items()]
    note = "ICE is a metric-learning loss; its claim is about embeddings (Recall@1), accuracy is a side effect"
    if task == "mnist1d":
        note += ("; on MNIST-1D the defaults (scale 16, weight 1) pull the 32-d embedding too hard against CE "
                 "in 15 epochs; the ce+ice(w0.1,s4) rows test a gentler setting")
    rows.append(_versus(group, "ce+ice", "ce", res["ce+ice"], res["ce"], note, **common))
    d = _versus(group, "ce+ice", "ce", rec["ce+ice"], rec["ce"], "Recall@1 of the classifier-input embeddings",
                **common)
    d["metric"] = "recall_at_1_difference"
    rows.append(d)
    if "ce+ice(w0.1,s4)" in res:
        rows.append(_versus(group, "ce+ice(w0.1,s4)", "ce", res["ce+ice(w0.1,s4)"], res["ce"],
                            "weight 0.1, scale 4", **common))
        d = _versus(group, "ce+ice(w0.1,s4)", "ce", rec["ce+ice(w0.1,s4)"], rec["ce"], "weight 0.1, scale 4",
                    **common)
        d["metric"] = "recall_at_1_difference"
        rows.append(d)
    return rows


def g_condense(seeds: list[int], quick: bool) -> list[dict]:
    from leandl.models.blocks.learned_group_conv import LearnedGroupConv, condense_model

    epochs = 2 if quick else 15
    res = {"learned_groups": [], "fixed_random_groups": [], "dense_1x1": []}
    macs: dict[str, float] = {}
    for s in seeds:
        data = digits(s)
        for k in res:
            model = build("condensenet_tiny", s, data)
            if k == "fixed_random_groups":
                g = torch.Generator().manual_seed(s)
                for m in model.modules():
                    if isinstance(m, LearnedGroupConv):
                        m.mask.zero_()
                        keep = m.in_channels // m.condense_factor
                        for grp in range(m.groups):
                            m.mask[grp :: m.groups, torch.randperm(m.in_channels, generator=g)[:keep]] = 1.0
            fit(model, data, epochs, s, [tech("learned_group_conv")] if k == "learned_groups" else [], lr=1e-2)
            out = _LAST["model"]
            if k == "fixed_random_groups":
                out = condense_model(out).eval()
            res[k].append(acc(out, data.test))
            macs[k] = _macs(out, data)
    common = {"group": "condense", "dataset": "digits", "model": "condensenet_tiny (G = C = 4)", "epochs": epochs}
    rows = [row(k, "test_accuracy", v, units="fraction", macs=macs[k], **common) for k, v in res.items()]
    rows.append(_versus("condense", "learned_groups", "fixed_random_groups", res["learned_groups"],
                        res["fixed_random_groups"], "same converted architecture and MACs; CondenseNet's claim "
                        "is that learning which inputs each group keeps beats a fixed grouping", **common))
    rows.append(_versus("condense", "learned_groups", "dense_1x1", res["learned_groups"], res["dense_1x1"],
                        "the dense model spends 4x the 1x1 MACs", **common))
    return rows


def g_groupwise(seeds: list[int], quick: bool) -> list[dict]:
    from leandl.data._base import TensorSplit

    res = {"fp32_teacher": [], "rtn_per_tensor": [], "rtn_4_groups": [], "joint_kd_4_groups": [],
           "two_stage_kd_4_groups": []}
    runs = {"rtn_per_tensor": (1, 0, 0), "rtn_4_groups": (4, 0, 0), "joint_kd_4_groups": (4, 0, 20),
            "two_stage_kd_4_groups": (4, 100, 20)}
    for s in seeds:
        data = digits(s)
        teacher = fit(build("digits_cnn", s, data), data, 2 if quick else 15, s)
        res["fp32_teacher"].append(acc(teacher, data.test))
        g = torch.Generator().manual_seed(s)
        idx = torch.cat([(data.train.targets == c).nonzero().flatten()[torch.randperm(int((data.train.targets == c).sum()), generator=g)[:10]] for c in range(10)])
        few = TensorSplit(data.train.inputs[idx], data.train.targets[idx])
        for k, (groups, steps, epochs) in runs.items():
            import copy

            model = copy.deepcopy(teacher).train()
            t = tech("groupwise_quant", bits=2, groups=groups, block_steps=steps)
            fit(model, data, epochs, s, [t], train=few, batch_size=50, lr=1e-3, weight_decay=0.0)
            res[k].append(acc(_LAST["model"], data.test))
    common = {"group": "groupwise", "dataset": "digits (100 training images for quantisation)",
              "model": "digits_cnn", "weight_bits": 2, "activations": "fp32"}
    rows = [row(k, "test_accuracy", v, units="fraction", **common) for k, v in res.items()]
    rows.append(_versus("groupwise", "rtn_4_groups", "rtn_per_tensor", res["rtn_4_groups"], res["rtn_per_tensor"],
                        "group scales keep small-range channels that one per-tensor scale rounds away", **common))
    rows.append(_versus("groupwise", "two_stage_kd_4_groups", "joint_kd_4_groups", res["two_stage_kd_4_groups"],
                        res["joint_kd_4_groups"], "the paper's claim: block-wise then joint beats joint only "
                        "with limited data. Here joint KD alone already recovers 2-bit digits_cnn to about 1 point "
                        "of fp32 from 100 images, leaving the block stage little to add on a 4-block network; "
                        "on the unit test's 5-layer MLP (40 samples) two-stage ends closer to the teacher (KL) "
                        "than joint only. The paper's gain is on ImageNet ResNets, where per-block errors "
                        "accumulate over many more blocks", **common))
    return rows


def g_early_bird(seeds: list[int], quick: bool) -> list[dict]:
    from leandl.prune.schedules.early_bird import mask_distance

    epochs = 6 if quick else 30
    found = {"fp32": [], "bf16": []}
    secs = {"fp32": [], "bf16": []}
    dist: list[float] = []
    for s in seeds:
        data = mnist1d(s)
        tickets = {}
        for prec in found:
            model = build("mnist1d_cnn", s, data, width=16)
            eb = tech("early_bird", ratio=0.5, precision=None if prec == "fp32" else "bf16")
            t0 = time.perf_counter()
            fit(model, data, epochs, s, [tech("l1_bn", lam=1e-4), eb], optimizer="sgd", lr=0.05)
            secs[prec].append(time.perf_counter() - t0)
            found[prec].append(float(eb.found_epoch or epochs))
            tickets[prec] = eb.ticket
        dist.append(mask_distance(tickets["fp32"], tickets["bf16"]))
    common = {"group": "early_bird", "dataset": "mnist1d (3000 samples)", "model": "mnist1d_cnn width 16",
              "ratio": 0.5, "planned_epochs": epochs, "threads": 1}
    load = os.getloadavg()[0]
    rows = [row(k, "ticket_epoch", v, units="epochs", **common) for k, v in found.items()]
    rows += [row(k, "search_seconds", v, units="s", load_avg_1m=load, **common) for k, v in secs.items()]
    rows.append(row("bf16 vs fp32", "ticket_hamming_distance", dist, units="fraction of channels", **common,
                    finding="how far the low-precision search's ticket is from the fp32 one (same seed); bf16 "
                            "autocast stands in for the paper's 8-bit SWALP search; on CPU bf16 is not faster "
                            "unless the CPU has native bf16 kernels"))
    return rows


def g_amp(seeds: list[int], quick: bool) -> list[dict]:
    """bf16 vs fp32 training (the full comparison, fp16 included, is ``benchmarks/amp.py``)."""
    import amp

    epochs = 3 if quick else 10
    res = {p: [amp.train_accuracy(p, s, epochs) for s in seeds] for p in ("fp32", "bf16")}
    load0 = os.getloadavg()[0]
    times = amp.step_times(3, 5 if quick else 10)
    common = {"group": "amp", "dataset": "digits", "model": "digits_cnn", "epochs": epochs, "threads": 1}
    rows = [row(p, "test_accuracy", [r[0] for r in runs], units="fraction", **common) for p, runs in res.items()]
    ratios = [b / f for b, f in zip(times["bf16"], times["fp32"], strict=True)]
    rows.append(row("bf16", "step_time_ratio_to_fp32", ratios, units="x (interleaved rounds)",
                    load_avg_1m=[load0, os.getloadavg()[0]], **common))
    rows.append(_versus("amp", "bf16", "fp32", [r[0] for r in res["bf16"]], [r[0] for r in res["fp32"]],
                        "the acceptance bound is 0.5 points; bf16 keeps fp32's exponent range, so no loss "
                        "scaling is needed and the weights and optimizer stay fp32", **common))
    return rows


RUNNERS = {"amp": g_amp, "softer": g_softer, "psg": g_psg, "ice": g_ice, "condense": g_condense, "groupwise": g_groupwise,
           "early_bird": g_early_bird,
           "psg_mnist1d": lambda seeds, quick: g_psg(seeds, quick, "mnist1d"),
           "ice_mnist1d": lambda seeds, quick: g_ice(seeds, quick, "mnist1d")}


def main() -> None:
    p = base_parser("issue20_new", __doc__.splitlines()[0])
    p.add_argument("--groups", default=",".join(GROUPS))
    args = p.parse_args()
    torch.set_num_threads(1)
    chosen = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in chosen if g not in RUNNERS]
    if unknown:
        raise SystemExit(f"unknown group(s) {unknown}; valid: {', '.join(GROUPS)}")
    seeds = list(range(1 if args.quick else args.seeds))
    old = json.loads(args.out.read_text()) if args.out.exists() else []
    rows = [r for r in old if r.get("group") not in chosen]
    for g in chosen:
        t0 = time.perf_counter()
        new = RUNNERS[g](seeds, args.quick)
        for r in new:
            r.setdefault("group", g)
            r["group_seconds"] = time.perf_counter() - t0
        print_table(new, g)
        rows += new
        write_rows(rows, args.out, "issue20_new")  # after every group: a crash keeps what is done


if __name__ == "__main__":
    main()
