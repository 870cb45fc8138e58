"""Trainer overhead: leandl's Trainer (with a no-op technique) vs a plain PyTorch loop.

resnet20 on synthetic 3x32x32 data at batch 128, SGD, same data and model init. Each round
times one epoch of ``--steps`` steps with each loop, alternating which goes first; the
reported figure is the median per-step time of each and the median of per-round ratios
(Trainer / plain). Acceptance (issue 2): ratio <= 1.05.

    python benchmarks/trainer_overhead.py --rounds 7 --steps 20
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

from leandl.data import load_data, make_loader  # noqa: E402
from leandl.models import create_model  # noqa: E402
from leandl.train import Technique, TrainConfig, Trainer  # noqa: E402


class NoOp(Technique):
    """Handles every per-batch event and does nothing (measures dispatch cost)."""

    name = "noop"

    def batch_start(self, state): ...
    def after_forward(self, state): ...
    def before_loss(self, state): ...
    def after_loss(self, state): ...
    def after_backward(self, state): ...
    def before_step(self, state): ...
    def after_step(self, state): ...
    def batch_end(self, state): ...


def _model():
    torch.manual_seed(0)
    return create_model("resnet20", num_classes=10, input_shape=[3, 32, 32])


def plain_epoch(model, data, batch, seed) -> float:
    """A hand-written loop over the same in-memory split; returns seconds per step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()
    t0 = time.perf_counter()
    steps = 0
    for x, y, _ in make_loader(data, batch, shuffle=True, seed=seed, epoch=0):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    return (time.perf_counter() - t0) / steps


def trainer_epoch(model, data, batch, seed) -> float:
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=0.05, progress=False, checkpoint_every=0, seed=seed,
                      log_every=0, schedule="constant")
    trainer = Trainer(model, cfg, train_data=data, val_data=None, num_classes=10, techniques=[NoOp()])
    t0 = time.perf_counter()
    res = trainer.fit()
    return (time.perf_counter() - t0) / (res.history[0]["samples_trained"] / cfg.batch_size)


def main() -> None:
    p = base_parser("trainer_overhead", __doc__.splitlines()[0], seeds=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    rounds, steps = (2, 4) if args.quick else (args.rounds, args.steps)
    bs = args.batch_size
    data = load_data("synthetic", shape=[3, 32, 32], num_classes=10, num_samples=steps * bs, num_test=bs).train
    plain_epoch(_model(), data, bs, 0)  # warm-up both paths
    trainer_epoch(_model(), data, bs, 0)
    plain, ours, ratios = [], [], []
    for r in range(rounds):
        first_plain = r % 2 == 0
        a = plain_epoch(_model(), data, bs, r) if first_plain else None
        b = trainer_epoch(_model(), data, bs, r)
        a = a if a is not None else plain_epoch(_model(), data, bs, r)
        plain.append(a * 1e3)
        ours.append(b * 1e3)
        ratios.append(b / a)
        print(f"round {r + 1}/{rounds}: plain {a * 1e3:.1f} ms/step  trainer {b * 1e3:.1f} ms/step  ratio {b / a:.3f}")
    extra = {"batch_size": bs, "threads": torch.get_num_threads(), "model": "resnet20", "steps": steps}
    rows = [row("plain_loop", "step_time", plain, units="ms", **extra),
            row("leandl_trainer_noop", "step_time", ours, units="ms", **extra),
            row("trainer/plain", "step_time_ratio", ratios, units="x", median=statistics.median(ratios), **extra)]
    print_table(rows, "Trainer overhead (resnet20, synthetic 3x32x32)")
    print(f"median ratio trainer/plain: {statistics.median(ratios):.3f} (acceptance <= 1.05)")
    write_rows(rows, args.out, "trainer_overhead")


if __name__ == "__main__":
    main()
