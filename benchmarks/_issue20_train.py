"""Issue 20 groups: training techniques (MaxDropout, norm loss, SRS, pseudo-label, SWA) and exits."""

from __future__ import annotations

from typing import Any

import torch

from _issue20_common import SMALL, acc, accs, build, cnn, exits_model, fit, memo, mnist1d, tech


def ep(n: int, quick: bool) -> int:
    return 1 if quick else n


# ------------------------------------------------------------------ regularisers / activations
def _mlp(seed: int, quick: bool, dropout: float, techs: list) -> float:
    d = mnist1d(seed)
    m = build("mlp", seed, d, hidden=[256, 256], dropout=dropout)
    return acc(fit(m, d, ep(30, quick), seed, techs, weight_decay=0.0), d.test)


MAXDROPOUT = {
    "title": "MaxDropout vs standard dropout (same rate) and no dropout, overfitting MLP",
    "baseline": "dropout", "metric": "test_accuracy",
    "settings": f"mnist1d {SMALL} samples, mlp [256, 256] (dropout after each hidden layer), rate 0.3, Adam "
                "3e-3 cosine, no weight decay, 30 epochs",
    "methods": {"dropout": lambda s, q: _mlp(s, q, 0.3, []),
                "maxdropout": lambda s, q: _mlp(s, q, 0.3, [tech("maxdropout")]),
                "maxdropout_per_sample": lambda s, q: _mlp(s, q, 0.3, [tech("maxdropout", per_sample=True)]),
                "no_dropout": lambda s, q: _mlp(s, q, 0.0, [])},
}


def _sgd_cnn(seed: int, quick: bool, wd: float, techs: list, width: int = 16) -> float:
    d = mnist1d(seed)
    return acc(fit(cnn(seed, d, width), d, ep(15, quick), seed, techs, optimizer="sgd", lr=0.05,
                   weight_decay=wd), d.test)


NORM_LOSS = {
    "title": "Norm loss (filters pulled to unit norm) in place of L2 weight decay",
    "baseline": "weight_decay", "metric": "test_accuracy",
    "settings": f"mnist1d {SMALL} samples, mnist1d_cnn width 16, SGD 0.05 momentum 0.9 cosine, 15 epochs; baseline "
                "weight decay 5e-4; norm loss lambda 1e-3 (sum) and 1e-2 with weight decay 0",
    "methods": {"weight_decay": lambda s, q: _sgd_cnn(s, q, 5e-4, []),
                "norm_loss": lambda s, q: _sgd_cnn(s, q, 0.0, [tech("norm_loss", weight=1e-3)]),
                "norm_loss_1e-2": lambda s, q: _sgd_cnn(s, q, 0.0, [tech("norm_loss", weight=1e-2)]),
                "no_regulariser": lambda s, q: _sgd_cnn(s, q, 0.0, [])},
}


def _act(seed: int, quick: bool, activation: str, depth: int) -> float:
    d = mnist1d(seed)
    m = build("mlp", seed, d, hidden=[128] * depth, activation=activation)
    return acc(fit(m, d, ep(20, quick), seed, optimizer="sgd", lr=0.05, weight_decay=5e-4), d.test)


SRS = {
    "title": "Soft-Root-Sign vs ReLU activations in a deep MLP (SGD)",
    "baseline": "relu", "metric": "test_accuracy",
    "settings": f"mnist1d {SMALL} samples, mlp 6 x 128 (and 3 x 128), SGD 0.05 cosine wd 5e-4, 20 epochs",
    "methods": {"relu": lambda s, q: _act(s, q, "relu", 6), "srs": lambda s, q: _act(s, q, "srs", 6),
                "relu_3_layers": lambda s, q: _act(s, q, "relu", 3), "srs_3_layers": lambda s, q: _act(s, q, "srs", 3)},
}


def _noisy(seed: int) -> Any:
    from leandl.data.noise import inject_noise

    d = mnist1d(seed)

    def make() -> Any:
        noisy = inject_noise(d.train.targets, d.num_classes, type="symmetric", rate=0.4, seed=seed)
        noisy = noisy[0] if isinstance(noisy, tuple) else noisy
        split = d.train.subset(torch.arange(len(d.train)))
        split.targets = noisy
        return split
    return memo(("noisy", seed), make)


def _noise_run(seed: int, quick: bool, techs: list) -> float:
    d = mnist1d(seed)
    return acc(fit(cnn(seed, d, 16), d, ep(20, quick), seed, techs, train=_noisy(seed)), d.test)


PSEUDO = {
    "title": "Pseudo-label (hard self label correction) under 40 % symmetric label noise vs plain CE",
    "baseline": "cross_entropy", "metric": "test_accuracy",
    "settings": f"mnist1d {SMALL} samples, 40 % symmetric train-label noise (flip to another class), "
                "mnist1d_cnn width 16, Adam 3e-3 cosine, 20 epochs, clean test labels",
    "methods": {"cross_entropy": lambda s, q: _noise_run(s, q, []),
                "pseudo_label": lambda s, q: _noise_run(s, q, [tech("pseudo_label")]),
                "pseudo_label_t0.9": lambda s, q: _noise_run(s, q, [tech("pseudo_label", threshold=0.9)])},
}


def _swa(seed: int, quick: bool, schedule: str, swa: dict | None) -> float:
    d = mnist1d(seed)
    techs = [tech("swa", **swa)] if swa is not None else []
    return acc(fit(cnn(seed, d, 16), d, ep(20, quick), seed, techs, optimizer="sgd", lr=0.05,
                   weight_decay=5e-4, schedule=schedule), d.test)


SWA = {
    "title": "SWA vs plain SGD (cosine) and vs SGD at a constant learning rate",
    "baseline": "sgd_cosine", "metric": "test_accuracy",
    "settings": f"mnist1d {SMALL} samples, mnist1d_cnn width 16, SGD 0.05 momentum 0.9 wd 5e-4, 20 epochs; SWA "
                "averages each epoch from 75 % (swa_lr 0.02), BN recomputed",
    "methods": {"sgd_cosine": lambda s, q: _swa(s, q, "cosine", None),
                "swa": lambda s, q: _swa(s, q, "cosine", {"start": 0.75, "swa_lr": 0.02}),
                "sgd_constant": lambda s, q: _swa(s, q, "constant", None),
                "swa_constant": lambda s, q: _swa(s, q, "constant", {"start": 0.5})},
}


# ------------------------------------------------------------------ early exits
def _exits(seed: int, quick: bool, techs: list, lr: float = 0.05, epochs: int = 10) -> dict[str, float]:
    d = mnist1d(seed)
    m = exits_model(seed, d)
    fit(m, d, ep(epochs, quick), seed, techs, optimizer="sgd", lr=lr, weight_decay=5e-4)
    a = accs(m, d.test)
    return {"mean_exit_accuracy": sum(a) / len(a), **{f"exit{k + 1}_accuracy": v for k, v in enumerate(a)}}


def _plain_exits(seed: int, quick: bool) -> dict[str, float]:
    return memo(("plain_exits", seed, quick), lambda: _exits(seed, quick, []))


EXIT_SETTINGS = (f"mnist1d {SMALL} samples, mnist1d_cnn width 16 with pooled MLP exits after stem, layer1, layer2 "
                 "(4 exits), SGD 0.05 momentum 0.9 cosine wd 5e-4, 10 epochs, joint training from scratch")

GE = {
    "title": "Gradient equilibrium (SGD) vs the plain sum of exit losses, and GE with a 2x learning rate",
    "baseline": "weighted_sum", "metric": "mean_exit_accuracy", "settings": EXIT_SETTINGS,
    "methods": {"weighted_sum": _plain_exits,
                "gradient_equilibrium": lambda s, q: _exits(s, q, [tech("gradient_equilibrium")]),
                "gradient_equilibrium_lr_x2": lambda s, q: _exits(s, q, [tech("gradient_equilibrium")], lr=0.1),
                "weighted_sum_lr_x2": lambda s, q: _exits(s, q, [], lr=0.1)},
}

OFA = {
    "title": "One-for-all KD (deepest exit teaches the others) vs the plain sum of exit losses",
    "baseline": "weighted_sum", "metric": "mean_exit_accuracy", "settings": EXIT_SETTINGS,
    "methods": {"weighted_sum": _plain_exits,
                "ofa_kd_gamma0.1": lambda s, q: _exits(s, q, [tech("one_for_all_kd", gamma=0.1)]),
                "ofa_kd_gamma0.5_T3": lambda s, q: _exits(s, q, [tech("one_for_all_kd", gamma=0.5, temperature=3.0)])},
}

INLINE = {
    "title": "Inline subnetwork collaboration (exit k gets exit k-1's logits) vs the plain sum of exit losses",
    "baseline": "weighted_sum", "metric": "mean_exit_accuracy", "settings": EXIT_SETTINGS,
    "methods": {"weighted_sum": _plain_exits,
                "inline_collaboration": lambda s, q: _exits(s, q, [tech("inline_collaboration", width=64)])},
}


def _halt(seed: int, quick: bool, policy: str) -> dict[str, float]:
    """A hard per-batch budget of 50 % of the backbone's MACs on the whole test set (one batch)."""
    from leandl.data import make_loader
    from leandl.dynamic import backbone_macs, calibrate_budget, collect_exit_outputs, exit_costs
    from leandl.dynamic.halt import predict_within_budget

    d = mnist1d(seed)

    def trained() -> Any:
        m = exits_model(seed, d)
        return fit(m, d, ep(10, quick), seed, optimizer="sgd", lr=0.05, weight_decay=5e-4)
    m = memo(("halt_model", seed, quick), trained)
    shape = tuple(d.input_shape)
    costs, full = exit_costs(m, shape), backbone_macs(m, shape)
    n, budget = len(d.test), 0.5 * full * len(d.test)
    thresholds = None
    if policy == "halt_with_confidence":
        vz, vy = collect_exit_outputs(m, make_loader(d.val, 512, shuffle=False))
        thresholds = calibrate_budget(vz, vy, costs, 0.45 * full).thresholds
    res = predict_within_budget(m, d.test.inputs, budget, costs, thresholds)
    return {"test_accuracy": float((res.logits.argmax(-1) == d.test.targets).float().mean()),
            "spent_fraction_of_budget": res.spent_macs / budget,
            "mean_exit": float(res.exit_index.float().mean()) + 1, "batch": float(n)}


HALT = {
    "title": "DDI budget halt: a hard 50 %-of-backbone MACs batch budget, confidence exits vs deepest affordable exit",
    "baseline": "deepest_affordable_exit", "metric": "test_accuracy", "settings": EXIT_SETTINGS + "; the 600 test "
    "samples are one batch with a budget of 0.5 x backbone MACs x 600; thresholds calibrated on val for 45 %",
    "units": {"spent_fraction_of_budget": "MACs spent / budget (<= 1 by construction)", "mean_exit": "exit (1-4)",
              "batch": "samples"},
    "methods": {"deepest_affordable_exit": lambda s, q: _halt(s, q, "static"),
                "halt_with_confidence": lambda s, q: _halt(s, q, "halt_with_confidence")},
}

GROUPS = {"maxdropout": MAXDROPOUT, "norm_loss": NORM_LOSS, "soft_root_sign": SRS, "pseudo_label": PSEUDO,
          "swa": SWA, "gradient_equilibrium": GE, "one_for_all_kd": OFA, "inline_collaboration": INLINE,
          "ddi_halt": HALT}
