"""Issue 20 groups: distillation (OSKD, FFL, DLAD, AT, DML, BYOT, DKD, FitNet, RKD)."""

from __future__ import annotations

from typing import Any

import torch

from _issue20_common import SMALL, acc, accs, cnn, fit, memo, mnist1d, teacher, tech

STUDENT_W, EPOCHS = 8, 15
SETTINGS = (f"mnist1d {SMALL} samples (2160 train), student mnist1d_cnn width {STUDENT_W}, teacher mnist1d_cnn "
            f"width 32 (15 epochs, same data), Adam 3e-3 cosine wd 1e-4, {EPOCHS} epochs, final weights, test split")


def ep(quick: bool) -> int:
    return 1 if quick else EPOCHS


def alone(seed: int, quick: bool, width: int = STUDENT_W) -> float:
    d = mnist1d(seed)
    return memo(("alone", seed, quick, width), lambda: acc(fit(cnn(seed, d, width), d, ep(quick), seed), d.test))


def distilled(seed: int, quick: bool, name: str, width: int = STUDENT_W, **kw: Any) -> float:
    d = mnist1d(seed)
    t = teacher(seed, d, epochs=1 if quick else 15)
    return acc(fit(cnn(seed, d, width), d, ep(quick), seed, [tech(name, teacher=t, **kw)]), d.test)


def _with_w16(group: dict, variants: dict[str, tuple[str, dict]]) -> dict:
    """Add a width-16 student (capacity closer to the teacher) and width-16 variants, paired with it."""
    group["methods"]["student_alone_w16"] = lambda s, q: alone(s, q, 16)
    group.setdefault("baseline_of", {})
    for label, (name, kw) in variants.items():
        group["methods"][label] = (lambda n, k: lambda s, q: distilled(s, q, n, 16, **k))(name, kw)
        group["baseline_of"][label] = "student_alone_w16"
    group["settings"] += "; *_w16 rows: student width 16, compared with student_alone_w16"
    return group


def teacher_acc(seed: int, quick: bool) -> float:
    d = mnist1d(seed)
    return acc(teacher(seed, d, epochs=1 if quick else 15), d.test)


def _group(title: str, methods: dict, settings: str = SETTINGS) -> dict:
    return {"title": title, "baseline": "student_alone", "metric": "test_accuracy", "settings": settings,
            "methods": {"student_alone": alone, **methods}}


def _oskd(seed: int, quick: bool) -> float:
    d = mnist1d(seed)
    return acc(fit(cnn(seed, d, STUDENT_W), d, ep(quick), seed, [tech("subclass", k=3, temperature=2.0)]), d.test)


def _peers(seed: int, quick: bool, kind: str) -> dict[str, float]:
    from leandl.distill import Cohort, FusionCohort

    d = mnist1d(seed)
    torch.manual_seed(seed)
    peers = [cnn(seed, d, STUDENT_W), cnn(seed + 500, d, STUDENT_W)]  # peer 1 = the alone student's init
    if kind == "fusion":
        model, techs = FusionCohort(peers, d.num_classes, tuple(d.input_shape)), [tech("fusion")]
    else:
        model, techs = Cohort(peers), [tech("mutual")]
    a = accs(fit(model, d, ep(quick), seed, techs), d.test)
    out = {"test_accuracy": a[0], "peer2_accuracy": a[1]}
    if kind == "fusion":
        out["fused_accuracy"] = a[2]
    return out


def _byot(seed: int, quick: bool, self_distill: bool) -> dict[str, float]:
    from leandl.dynamic import attach_exits

    d = mnist1d(seed)
    model = attach_exits(cnn(seed, d, STUDENT_W), ["stem", "layer1"], head="mlp", pool=4, hidden=32)
    techs = [tech("self", alpha=0.3, temperature=3.0)] if self_distill else []
    a = accs(fit(model, d, ep(quick), seed, techs), d.test)
    return {"test_accuracy": a[-1], "exit1_accuracy": a[0], "exit2_accuracy": a[1]}


def _dlad_teachers(seed: int, quick: bool) -> list[torch.nn.Module]:
    """Three specialist teachers, each trained on a non-IID shard (4 home classes + 10 % of the rest)."""
    d = mnist1d(seed)

    def make() -> list[torch.nn.Module]:
        out = []
        y = d.train.targets
        g = torch.Generator().manual_seed(seed)
        for k, home in enumerate(([0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9])):
            is_home = torch.isin(y, torch.tensor(home))
            keep = is_home | (torch.rand(len(y), generator=g) < 0.1)
            shard = d.train.subset(torch.nonzero(keep).flatten())
            out.append(fit(cnn(seed + 100 * k, d, 16), d, 1 if quick else 12, seed, train=shard))
        return out
    return memo(("dlad", seed, quick), make)


def _dlad(seed: int, quick: bool, weighting: str) -> float:
    d = mnist1d(seed)
    ts = _dlad_teachers(seed, quick)
    kd = tech("kd", teachers=ts, weighting=weighting, temperature=4.0, alpha=1.0)
    return acc(fit(cnn(seed, d, 16), d, ep(quick), seed, [kd]), d.test)


def _dlad_alone(seed: int, quick: bool) -> float:
    d = mnist1d(seed)
    return acc(fit(cnn(seed, d, 16), d, ep(quick), seed), d.test)


GROUPS = {
    "oskd": _group("Online subclass KD (same-class nearest-neighbour self-distillation) vs student alone",
                   {"oskd": _oskd}),
    "ffl": _group("Feature-fusion learning (2 peers + fusion classifier) vs the same student alone",
                  {"ffl": lambda s, q: _peers(s, q, "fusion")}),
    "mutual": _group("Deep mutual learning (2-peer cohort) vs the same student alone",
                     {"mutual": lambda s, q: _peers(s, q, "mutual")}),
    "attention": _with_w16(_group("Attention transfer from a width-32 teacher vs student alone (and KD for scale)",
                        {"attention": lambda s, q: distilled(s, q, "attention"),
                         "attention_w40": lambda s, q: distilled(s, q, "attention", weight=40.0),
                         "kd": lambda s, q: distilled(s, q, "kd", temperature=4.0, alpha=0.9),
                         "teacher": teacher_acc}),
                        {"attention_w16": ("attention", {"weight": 40.0}), "kd_w16": ("kd", {"temperature": 4.0,
                                                                                             "alpha": 0.9})}),
    "dkd": _with_w16(_group("Decoupled KD vs student alone (and KD)", {
        "dkd": lambda s, q: distilled(s, q, "dkd"),
        "dkd_beta2": lambda s, q: distilled(s, q, "dkd", beta=2.0),
        "kd": lambda s, q: distilled(s, q, "kd", temperature=4.0, alpha=0.9)}),
        {"dkd_w16": ("dkd", {}), "dkd_beta2_w16": ("dkd", {"beta": 2.0})}),
    "fitnet": _with_w16(_group("FitNet hints vs student alone", {
        "fitnet": lambda s, q: distilled(s, q, "fitnet"),
        "fitnet_w10": lambda s, q: distilled(s, q, "fitnet", weight=10.0)}),
        {"fitnet_w10_w16": ("fitnet", {"weight": 10.0})}),
    "rkd": _with_w16(_group("Relational KD (distance + angle) vs student alone", {
        "rkd": lambda s, q: distilled(s, q, "rkd"),
        "rkd_distance_only": lambda s, q: distilled(s, q, "rkd", angle_weight=0.0)}),
        {"rkd_w16": ("rkd", {})}),
    "byot": {"title": "BYOT self-distillation in a 3-exit student vs the same exits trained with CE only",
             "baseline": "exits_ce_only", "metric": "test_accuracy", "settings": SETTINGS + "; exits after "
             "stem and layer1 (pooled MLP heads), alpha 0.3, T 3; test_accuracy = final exit",
             "methods": {"exits_ce_only": lambda s, q: _byot(s, q, False), "byot": lambda s, q: _byot(s, q, True),
                         "student_alone": alone}},
    "dlad": {"title": "Multi-teacher KD from 3 non-IID specialist teachers: DLAD confidence weighting vs fixed",
             "baseline": "fixed_weights", "metric": "test_accuracy",
             "settings": f"mnist1d {SMALL} samples; teachers mnist1d_cnn width 16, each trained 12 epochs on 4 home "
                         "classes + 10 % of the others; student width 16, pure soft targets (alpha 1, T 4), 15 "
                         "epochs; confidence = each teacher's max softmax probability (leandl's simplification)",
             "methods": {"fixed_weights": lambda s, q: _dlad(s, q, "fixed"),
                         "confidence_weights": lambda s, q: _dlad(s, q, "confidence"),
                         "student_alone_labels": _dlad_alone}},
}
