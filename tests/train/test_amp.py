"""Mixed-precision training: autocast is on, fp16 loss scaling skips overflowing steps, resume keeps the scale."""

from __future__ import annotations

import pytest
import torch

from leandl.train import Technique, TrainConfig, Trainer
from leandl.train.amp import AmpContext


class Record(Technique):
    """Records the output dtype of every forward and the first weight after every step."""

    name = "record"

    def __init__(self) -> None:
        self.dtypes: list[torch.dtype] = []
        self.weights: list[torch.Tensor] = []

    def after_forward(self, state):
        self.dtypes.append(state.outputs.dtype)

    def after_step(self, state):
        self.weights.append(next(state.model.parameters()).detach().clone())


class Overflow(Technique):
    """On the first step adds ``1000 * sum(logits)``: its gradient, 1000 x 2**16, overflows fp16."""

    name = "overflow"

    def after_loss(self, state):
        if state.step == 0:
            state.add_loss_term("overflow", 1000.0 * state.outputs.float().sum())


def _cfg(precision: str, epochs: int = 1, **kw) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=16, lr=0.1, progress=False, checkpoint_every=0,
                       precision=precision, **kw)


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                             ("fp16", torch.float16)])
def test_autocast_sets_the_forward_dtype(mlp, blobs, precision, dtype):
    rec = Record()
    Trainer(mlp, _cfg(precision), train_data=blobs[0], val_data=None, num_classes=3, techniques=[rec]).fit()
    assert rec.dtypes and all(d == dtype for d in rec.dtypes)
    assert next(mlp.parameters()).dtype == torch.float32  # master weights stay fp32


def test_bf16_trains_blobs_like_fp32(mlp, blobs):
    train, val = blobs
    res = Trainer(mlp, _cfg("bf16", epochs=15), train_data=train, val_data=val, num_classes=3).fit()
    assert res.metrics["val_accuracy"] >= 0.95
    assert res.metrics["precision"] == "bf16"


def test_fp16_skips_the_overflowing_step_and_halves_the_scale(mlp, blobs):
    rec = Record()
    before = next(mlp.parameters()).detach().clone()
    t = Trainer(mlp, _cfg("fp16"), train_data=blobs[0], val_data=None, num_classes=3,
                techniques=[Overflow(), rec])
    res = t.fit()
    assert torch.equal(rec.weights[0], before)  # step 0: inf gradient -> no update
    assert not torch.equal(rec.weights[1], rec.weights[0])  # step 1: finite -> updated
    assert res.metrics["amp_steps_skipped"] == 1
    assert t.amp.scale == 2.0**15  # 2**16 halved once
    assert all(torch.isfinite(p).all() for p in mlp.parameters())


def test_fp32_takes_the_overflowing_step(mlp, blobs):
    rec = Record()
    before = next(mlp.parameters()).detach().clone()
    Trainer(mlp, _cfg("fp32"), train_data=blobs[0], val_data=None, num_classes=3,
            techniques=[Overflow(), rec]).fit()
    assert not torch.equal(rec.weights[0], before)


def test_amp_context_by_hand():
    """One inf gradient: no step, scale 4 -> 2; a finite one: w -= lr * g with g unscaled."""
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=0.5)
    amp = AmpContext("fp16", torch.device("cpu"), init_scale=4.0)
    amp.backward((w * float("inf")).sum(), opt)  # gradient inf
    assert amp.step(opt) is False and float(w.detach()) == 1.0 and amp.scale == 2.0
    opt.zero_grad()
    amp.backward((w * 3.0).sum(), opt)
    assert float(w.grad) == 3.0  # unscaled: d(3w)/dw, not 2 x 3
    assert amp.step(opt) is True and float(w.detach()) == pytest.approx(1.0 - 0.5 * 3.0)
    assert amp.steps_skipped == 1


def test_resume_keeps_the_loss_scale(mlp, blobs, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.1, progress=False, checkpoint_every=1, precision="fp16")
    t1 = Trainer(mlp, cfg, train_data=blobs[0], val_data=None, num_classes=3, techniques=[Overflow()],
                 run_dir=tmp_path)
    t1.fit()
    assert t1.amp.scale == 2.0**15
    t2 = Trainer(mlp, cfg, train_data=blobs[0], val_data=None, num_classes=3, techniques=[Overflow()],
                 run_dir=tmp_path, resume=True)
    t2.fit()
    assert t2.amp.scale == 2.0**15 and t2.amp.steps_skipped == 1


def test_bad_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    from pydantic import ValidationError

    from leandl.recipes.schema import TrainDefaults, TrainOverrides

    with pytest.raises(ValidationError, match="precision"):
        TrainDefaults(precision="int8")
    assert TrainOverrides(precision="bf16").precision == "bf16"


def test_recipe_precision_reaches_the_trainer(tmp_path):
    import leandl
    from tests_helpers import fast_recipe

    recipe = fast_recipe()
    recipe["defaults"].update({"epochs": 1, "precision": "fp16"})
    recipe["measure"] = {"batch_sizes": [1], "repeats": 1, "warmup": 0, "latency": False, "energy": False}
    recipe["stages"] = [{"kind": "train", "precision": "bf16"}]  # the stage overrides the defaults
    summary = leandl.run(recipe, out=tmp_path / "run")
    assert summary["stages"][0]["metrics"]["precision"] == "bf16"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_amp_on_cuda(mlp, blobs, precision, dtype):
    rec = Record()
    t = Trainer(mlp, _cfg(precision, epochs=15), train_data=blobs[0], val_data=blobs[1], num_classes=3,
                techniques=[Overflow(), rec] if precision == "fp16" else [rec], device="cuda")
    res = t.fit()
    assert set(rec.dtypes) == {dtype} and res.metrics["val_accuracy"] >= 0.95
    assert res.metrics.get("amp_steps_skipped", 0) == (1 if precision == "fp16" else 0)
