"""Issue 20 groups: CHEX, soft filter pruning, discriminant-information pruning, lottery/scratch."""

from __future__ import annotations

import copy
from typing import Any

import torch

from _issue20_common import acc, cnn, fit, memo, mnist1d, remember, tech

from leandl.measure import count_macs
from leandl.prune.api import prune_

WIDTH = 32  # prunable teacher-size CNN


def ep(n: int, quick: bool) -> int:
    return 1 if quick else n


def _x(data: Any) -> torch.Tensor:
    return data.test.inputs[:1]


def _macs(model: torch.nn.Module, data: Any) -> float:
    return float(count_macs(model.eval(), _x(data)).total)


def dense(seed: int, quick: bool) -> torch.nn.Module:
    """The dense width-32 CNN trained E epochs (shared by the groups of one process)."""
    d = mnist1d(seed)
    return memo(("dense", seed, quick), lambda: fit(cnn(seed, d, width=WIDTH), d, ep(12, quick), seed))


def _dense_row(seed: int, quick: bool) -> dict[str, float]:
    return {"test_accuracy": acc(dense(seed, quick), mnist1d(seed).test), "macs_fraction": 1.0}


def _prune_finetune(seed: int, quick: bool, criterion: str, key: str) -> dict[str, float]:
    """Dense E epochs -> one-shot prune to the schedule's MACs -> fine-tune E/2 epochs (lr 1e-3)."""
    d = mnist1d(seed)
    base = dense(seed, quick)
    m = copy.deepcopy(base)
    target = memo((key, seed, quick), lambda: 0.5)
    prune_(m, _x(d), criterion=criterion, target={"macs": target}, round_to=None)
    fit(m.train(), d, max(1, ep(12, quick) // 2), seed, lr=1e-3)
    return {"test_accuracy": acc(m, d.test), "macs_fraction": _macs(m, d) / _macs(base, d)}


def _schedule_from_scratch(seed: int, quick: bool, technique: Any, key: str, epochs: int = 12) -> dict[str, float]:
    d = mnist1d(seed)
    m = cnn(seed, d, width=WIDTH)
    full = _macs(m, d)
    fit(m.train(), d, ep(epochs, quick), seed, [technique])
    frac = _macs(m, d) / full
    remember((key, seed, quick), frac)
    return {"test_accuracy": acc(m, d.test), "macs_fraction": frac}


CHEX = {
    "title": "CHEX channel exploration (prune + regrow during training) vs train-prune-fine-tune at equal MACs",
    "baseline": "prune_finetune_l1", "metric": "test_accuracy",
    "settings": "mnist1d 3000 samples, mnist1d_cnn width 32, Adam 3e-3 cosine; CHEX 12 (and 18) epochs from scratch "
                "(sparsity 0.5, regrow 0.2, period 2, explore until 0.7); baseline: dense 12 epochs -> L1 prune "
                "to CHEX's measured MACs fraction -> 6 epochs fine-tune lr 1e-3 (1.5x CHEX's epochs)",
    "units": {"macs_fraction": "MACs kept / dense MACs (batch 1)"},
    "methods": {
        "chex": lambda s, q: _schedule_from_scratch(s, q, tech("prune_regrow", sparsity=0.5, regrow=0.2, period=2,
                                                              explore_until=0.7, seed=s), "chex_macs"),
        "chex_18_epochs": lambda s, q: _schedule_from_scratch(
            s, q, tech("prune_regrow", sparsity=0.5, regrow=0.2, period=2, explore_until=0.7, seed=s), "chex18", 18),
        "prune_finetune_l1": lambda s, q: _prune_finetune(s, q, "l1", "chex_macs"),
        "dense": _dense_row,
    },
}

SFP = {
    "title": "Soft filter pruning (zeroed filters keep training) vs hard prune + fine-tune at equal MACs",
    "baseline": "prune_finetune_l2", "metric": "test_accuracy",
    "settings": "mnist1d 3000 samples, mnist1d_cnn width 32, Adam 3e-3 cosine; SFP 12 (and 18) epochs from scratch "
                "(ratio 0.3 per layer, L2, every epoch); baseline: dense 12 epochs -> L2 prune to SFP's measured "
                "MACs fraction -> 6 epochs fine-tune lr 1e-3",
    "units": {"macs_fraction": "MACs kept / dense MACs (batch 1)"},
    "methods": {
        "soft_filter_pruning": lambda s, q: _schedule_from_scratch(s, q, tech("soft_pruning", ratio=0.3), "sfp_macs"),
        "asfp": lambda s, q: _schedule_from_scratch(s, q, tech("soft_pruning", ratio=0.3, asymptotic=True), "asfp_m"),
        "sfp_18_epochs": lambda s, q: _schedule_from_scratch(s, q, tech("soft_pruning", ratio=0.3), "sfp18", 18),
        "prune_finetune_l2": lambda s, q: _prune_finetune(s, q, "l2", "sfp_macs"),
        "dense": _dense_row,
    },
}


def _criterion(seed: int, quick: bool, criterion: Any, scope: str = "global") -> dict[str, float]:
    """One-shot prune of the trained dense CNN to 40 % MACs by ``criterion``; accuracy before/after 1 epoch."""
    from leandl.data.loader import make_loader

    d = mnist1d(seed)
    m = copy.deepcopy(dense(seed, quick))
    batches = [(b[0], b[1]) for _, b in zip(range(8), make_loader(d.train, 64, shuffle=True, seed=seed))]
    prune_(m, _x(d), criterion=criterion, target={"macs": 0.4}, round_to=None, batches=batches, scope=scope)
    out = {"accuracy_no_finetune": acc(m, d.test)}
    fit(m.train(), d, 1, seed, lr=1e-3)
    out["accuracy_after_1_epoch"] = acc(m, d.test)
    return out


def _di(rho: float) -> Any:
    from leandl.prune.criteria.di import DI as Criterion

    return Criterion(rho=rho)


DI = {
    "title": "Discriminant-information channel pruning vs L1 (and Taylor) at 40 % MACs, no retraining and 1 epoch",
    "baseline": "l1", "metric": "accuracy_no_finetune",
    "settings": "mnist1d 3000 samples, trained mnist1d_cnn width 32 (12 epochs), one-shot prune (global, or "
                "layerwise: every group loses the same share) to 40 % "
                "of MACs; data criteria score 8 training batches of 64; then 1 fine-tune epoch at lr 1e-3",
    "methods": {"l1": lambda s, q: _criterion(s, q, "l1"), "di": lambda s, q: _criterion(s, q, "di"),
                "taylor": lambda s, q: _criterion(s, q, "taylor"),
                "l1_layerwise": lambda s, q: _criterion(s, q, "l1", "layerwise"),
                "di_layerwise": lambda s, q: _criterion(s, q, "di", "layerwise"),
                "di_rho1e4": lambda s, q: _criterion(s, q, _di(1e4))},
}


def _rewound_dense(seed: int, quick: bool) -> torch.nn.Module:
    d = mnist1d(seed)

    def make() -> torch.nn.Module:
        m = cnn(seed, d, width=WIDTH)
        steps_per_epoch = (len(d.train) + 63) // 64
        return fit(m, d, ep(12, quick), seed, [tech("rewind_point", step=steps_per_epoch)])
    return memo(("rewind_dense", seed, quick), make)


def _retrain(seed: int, quick: bool, init: str) -> dict[str, float]:
    from leandl.prune.schedules.lottery import REWIND_ATTR, reinitialize_, rewound_model_state, scratch_epochs

    d = mnist1d(seed)
    base = _rewound_dense(seed, quick)
    m = copy.deepcopy(base)
    prune_(m, _x(d), criterion="l1", target={"macs": 0.3}, round_to=None)
    epochs, lr = ep(12, quick), 3e-3
    if init == "fine_tune":
        lr = 3e-4
    elif init == "rewind":
        with torch.no_grad():
            m.load_state_dict(rewound_model_state(m, getattr(base, REWIND_ATTR)["weights"]))
    else:
        reinitialize_(m, seed=seed + 7)
        if init == "scratch_b":
            epochs = scratch_epochs(epochs, _macs(base, d), _macs(m, d), "B")
    fit(m.train(), d, epochs, seed, lr=lr)
    return {"test_accuracy": acc(m, d.test), "retrain_epochs": float(epochs)}


LOTTERY = {
    "title": "Retraining a pruned CNN (30 % MACs): fine-tune vs lottery rewinding vs Scratch-E / Scratch-B",
    "baseline": "fine_tune", "metric": "test_accuracy",
    "settings": "mnist1d 3000 samples, mnist1d_cnn width 32 trained 12 epochs (rewind point after 1 epoch), "
                "L1 global prune to 30 % MACs; every variant retrains 12 epochs (Scratch-B: MACs-scaled, cap 2x), "
                "Adam cosine, lr 3e-3 (fine-tune 3e-4)",
    "units": {"retrain_epochs": "epochs"},
    "methods": {"fine_tune": lambda s, q: _retrain(s, q, "fine_tune"), "rewind": lambda s, q: _retrain(s, q, "rewind"),
                "scratch_e": lambda s, q: _retrain(s, q, "scratch_e"),
                "scratch_b": lambda s, q: _retrain(s, q, "scratch_b")},
}

GROUPS = {"chex": CHEX, "soft_filter_pruning": SFP, "di_pruning": DI, "lottery": LOTTERY}
