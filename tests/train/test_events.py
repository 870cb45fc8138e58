from __future__ import annotations

import torch

from leandl.train import Engine, Event, State, Technique, TrainConfig, Trainer


class Counter(Technique):
    name = "counter"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, item: str):
        if item in {e.value for e in Event}:
            return lambda state: self.calls.append(item)
        raise AttributeError(item)


def test_event_order_through_one_fit(mlp, blobs):
    train, val = blobs
    tech = Counter()
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[tech]).fit()
    per_batch = ["batch_start", "after_forward", "before_loss", "after_loss", "after_backward",
                 "before_step", "after_step", "batch_end"]
    expected = ["fit_start", "epoch_start", *per_batch, *per_batch, "epoch_end", "eval_end", "fit_end"]
    assert tech.calls == expected


def test_engine_orders_by_order_then_position():
    seen: list[str] = []

    class A(Technique):
        name, order = "a", 5

        def batch_start(self, state):
            seen.append("a")

    class B(Technique):
        name, order = "b", -1

        def batch_start(self, state):
            seen.append("b")

    class C(Technique):
        name, order = "c", 5

        def batch_start(self, state):
            seen.append("c")

    engine = Engine([A(), B(), C()], trace=True)
    state = State(model=torch.nn.Linear(1, 1), num_classes=2)
    engine.run(Event.BATCH_START, state)
    assert seen == ["b", "a", "c"]
    assert [t[2] for t in engine.trace] == ["b", "a", "c"]
    assert not engine.has(Event.AFTER_STEP)


def test_skip_batch_skips_forward_and_step(mlp, blobs):
    train, val = blobs

    class SkipAll(Technique):
        name = "skip_all"

        def batch_start(self, state):
            state.skip_batch = True

        def after_forward(self, state):
            raise AssertionError("a skipped batch must not run forward")

    before = [p.detach().clone() for p in mlp.parameters()]
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[SkipAll()]).fit()
    for a, b in zip(before, mlp.parameters()):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)
