"""Teachers, caching, taps and a two-batch Trainer run of every technique."""

from __future__ import annotations

import copy

import pytest
import torch

from leandl.checkpoint import save
from leandl.data import TensorSplit
from leandl.distill import (Cohort, FusionCohort, TeacherSet, combine_teachers, confidence_weights)
from leandl.errors import ConfigError, ModelError
from leandl.models import create_model
from leandl.registry import TECHNIQUES
from leandl.train.config import TrainConfig
from leandl.train.trainer import Trainer


def _data(n: int = 64, seed: int = 0) -> TensorSplit:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 1, 8, 8, generator=g) * 0.5 + y.float()[:, None, None, None] / 2
    return TensorSplit(x, y)


def _cnn(width: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("digits_cnn", num_classes=4, input_shape=(1, 8, 8), width=width)


def _fit(model: torch.nn.Module, techniques: list, epochs: int = 1, batches: int | None = 2) -> Trainer:
    data = _data(32 if batches else 64)
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=0.01, progress=False, checkpoint_every=0, log_every=0)
    tr = Trainer(model, cfg, train_data=data, val_data=_data(16, 1), num_classes=4, techniques=techniques)
    tr.fit()
    return tr


TEACHER_TECHNIQUES = {
    "kd": {}, "dkd": {}, "fitnet": {}, "attention": {}, "rkd": {},
}


@pytest.mark.parametrize("name", sorted(TEACHER_TECHNIQUES))
def test_teacher_technique_trains_two_batches(name: str) -> None:
    teacher, student = _cnn(8, 1), _cnn(4, 2)
    before = copy.deepcopy(student.state_dict())
    tr = _fit(student, [TECHNIQUES.get(name)(teacher=teacher)])
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())
    assert set(student.state_dict()) == set(before)  # no regressor leaked into the student
    assert all(not p.requires_grad for p in teacher.parameters())
    assert tr.state.loss_terms.get(name) is not None


def test_fitnet_regressor_is_trained_and_mlp_student_works() -> None:
    teacher = _cnn(8, 1)
    student = create_model("mlp", num_classes=4, input_shape=(1, 8, 8), hidden=[16])
    tech = TECHNIQUES.get("fitnet")(teacher=teacher, student_layer="layer1")
    tr = _fit(student, [tech])
    reg = tech.aux.modules[0]
    assert tech.aux.optimizer is not None
    assert reg[1].weight.grad is None  # stepped and zeroed
    assert tech.state_dict()["regressor"]["optimizer"]["state"]  # momentum buffers exist
    assert tr.state.loss_terms["fitnet"] > 0


@pytest.mark.parametrize("name,builder", [
    ("mutual", lambda: Cohort([_cnn(4, 1), _cnn(4, 2)])),
    ("fusion", lambda: FusionCohort([_cnn(4, 1), _cnn(4, 2)], 4, (1, 8, 8))),
    ("self", lambda: Cohort([_cnn(4, 1), _cnn(8, 2)])),
    ("subclass", lambda: _cnn(4, 1)),
])
def test_online_technique_trains_two_batches(name: str, builder) -> None:  # noqa: ANN001
    tr = _fit(builder(), [TECHNIQUES.get(name)()])
    assert tr.state.loss_terms.get(name) is not None
    if name == "self":
        assert tr.state.output_weights[0] == pytest.approx(0.7)


def test_online_technique_refuses_single_output() -> None:
    with pytest.raises(ModelError, match="list of at least two logits"):
        _fit(_cnn(4), [TECHNIQUES.get("mutual")()])


def test_unknown_layer_lists_valid_names() -> None:
    with pytest.raises(ModelError, match=r"no module named 'layer9'.*Valid module names: stem"):
        _fit(_cnn(4), [TECHNIQUES.get("fitnet")(teacher=_cnn(8), student_layer="layer9")])


def test_attention_refuses_vector_features() -> None:
    mlp = create_model("mlp", num_classes=4, input_shape=(1, 8, 8), hidden=[16])
    with pytest.raises(ModelError, match="feature maps"):
        _fit(mlp, [TECHNIQUES.get("attention")(teacher=_cnn(8), student_layers=["layer1"],
                                               teacher_layers=["layer1"])])


def test_cache_gives_identical_losses_and_skips_teacher() -> None:
    losses = {}
    for cache in (True, False):
        tech = TECHNIQUES.get("kd")(teacher=_cnn(8, 1), cache=cache)
        tr = _fit(_cnn(4, 2), [tech], epochs=3, batches=None)
        losses[cache] = [h["train_loss"] for h in tr.history]
        if cache:
            assert tech.teacher_set.cache_on and tech.teacher_set.computed == 64
            assert tech.teacher_set.hits == 128 and tr.state.counters["teacher_cache_hits"] == 128
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), rtol=1e-6, atol=1e-7)


def test_teacher_sources(tmp_path) -> None:  # noqa: ANN001
    teacher = _cnn(8, 1)
    save(teacher, tmp_path / "t")
    ts = TeacherSet([str(tmp_path / "t"), {"model": "digits_cnn", "kwargs": {"width": 4}}], weights=[3, 1])
    tr = _fit(_cnn(4), [TECHNIQUES.get("kd")(teacher=ts)])
    assert ts.weights == [0.75, 0.25] and len(ts.models) == 2 and tr.state.loss_terms["kd"] >= 0
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(ts.models[0](x), teacher.eval()(x))
    with pytest.raises(ConfigError, match="trust"):
        TeacherSet([{"factory": "leandl.models.mlp:mlp"}]).setup(tr.state)


def test_combine_fixed_and_confidence_weights() -> None:
    z1, z2 = torch.tensor([[4.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    mix = combine_teachers([z1, z2], [0.5, 0.5], temperature=2.0)
    p1, p2 = (z1 / 2).softmax(-1), (z2 / 2).softmax(-1)
    torch.testing.assert_close((mix / 2).softmax(-1), 0.5 * p1 + 0.5 * p2)
    w = confidence_weights([z1, z2], [0.5, 0.5])
    c1 = float(z1.softmax(-1).max())
    torch.testing.assert_close(w[:, 0], torch.tensor([c1 / (c1 + 0.5), 0.5 / (c1 + 0.5)]))


def test_kd_student_moves_towards_teacher() -> None:
    """Behaviour: with KD the student's outputs end closer to the teacher's than without."""
    teacher = _cnn(8, 1)
    x = _data(64).inputs
    gaps = {}
    for use_kd in (False, True):
        student = _cnn(4, 2)
        techs = [TECHNIQUES.get("kd")(teacher=teacher, alpha=1.0, temperature=2.0)] if use_kd else []
        _fit(student, techs, epochs=4, batches=None)
        with torch.no_grad():
            gaps[use_kd] = float(torch.nn.functional.kl_div(student.eval()(x).log_softmax(-1),
                                                            teacher.eval()(x).softmax(-1), reduction="batchmean"))
    assert gaps[True] < gaps[False]


def test_build_fusion_cohort_factory_round_trips_a_checkpoint(tmp_path) -> None:
    import pytest
    import torch

    from leandl.checkpoint import load, save
    from leandl.errors import ModelError
    from leandl.models import create_model

    name = "leandl.distill.fusion:build_fusion_cohort"
    torch.manual_seed(0)
    m = create_model(name, model="mnist1d_cnn", k=2, num_classes=10, input_shape=[1, 40],
                     model_kwargs={"width": 8})
    x = torch.randn(3, 1, 40)
    outs = m.eval()(x)
    assert len(outs) == 3 and all(o.shape == (3, 10) for o in outs)
    assert not torch.equal(outs[0], outs[1])  # peers start different
    save(m, tmp_path / "ffl")
    back = load(tmp_path / "ffl", trust=True).eval()
    torch.testing.assert_close(back(x)[-1], outs[-1])
    with pytest.raises(ModelError, match="k >= 2"):
        create_model(name, model="mnist1d_cnn", k=1, input_shape=[1, 40])
