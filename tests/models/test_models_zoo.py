"""Every registered model: forward + backward at batch 2, on its default and on a tiny input."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from leandl.errors import ModelError
from leandl.models import create_model, default_input_shape
from leandl.registry import MODELS

# Heavy models run the generic test at a small input only (their default is covered by counts).
_HEAVY = {"resnet50", "vgg16_bn", "resnet110", "vit_tiny"}
_ONE_D = {"mnist1d_cnn"}


def _shapes(name: str) -> list[tuple[int, ...]]:
    if name in _ONE_D:
        return [(1, 40)]
    tiny = (1, 8, 8)
    if name in _HEAVY:
        return [tiny, (3, 16, 16)]
    return [default_input_shape(name), tiny]


_CASES = [(n, s) for n in MODELS.names() for s in _shapes(n)]


@pytest.mark.parametrize(("name", "shape"), _CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in _CASES])
def test_forward_backward(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, input_shape=shape)
    x = torch.randn(2, *shape)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", MODELS.names())
def test_registered_surface(name: str) -> None:
    fn = MODELS.get(name)
    params = inspect.signature(fn).parameters
    assert params["num_classes"].default == 10
    assert params["num_classes"].kind is inspect.Parameter.KEYWORD_ONLY
    assert len(default_input_shape(name)) in (2, 3)
    assert MODELS.describe(name), f"{name} needs a one-line docstring"


@pytest.mark.parametrize("name", [n for n in MODELS.names() if n not in _HEAVY])
def test_exit_points_chain(name: str) -> None:
    """forward == forward_head(forward_features); every exit point names a real submodule."""
    shape = _shapes(name)[-1]
    model = create_model(name, input_shape=shape).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_head(model.forward_features(x)))
    modules = dict(model.named_modules())
    assert model.exit_points, f"{name} lists no exit points"
    assert all(p in modules for p in model.exit_points)
    order = [n for n, _ in model.named_modules()]
    assert [order.index(p) for p in model.exit_points] == sorted(order.index(p) for p in model.exit_points)
    assert isinstance(model.get_classifier(), nn.Linear)
    assert model.get_classifier().out_features == 10


def test_exit_points_see_every_stage_output() -> None:
    model = create_model("resnet20", input_shape=(3, 8, 8)).eval()
    seen: list[tuple[int, ...]] = []
    for p in model.exit_points:
        model.get_submodule(p).register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    model(torch.randn(2, 3, 8, 8))
    assert seen == [(2, 16, 8, 8), (2, 32, 4, 4), (2, 64, 2, 2)]


@pytest.mark.parametrize("name", ["resnet20", "digits_cnn", "vit_tiny", "vgg11_bn", "lenet5"])
def test_two_d_model_rejects_one_d_shape(name: str) -> None:
    with pytest.raises(ModelError, match=rf"{name}.*\(1, 40\)"):
        create_model(name, input_shape=(1, 40))


def test_one_d_model_rejects_images() -> None:
    with pytest.raises(ModelError, match=r"mnist1d_cnn.*\(3, 32, 32\)"):
        create_model("mnist1d_cnn", input_shape=(3, 32, 32))


def test_mlp_runs_on_any_shape() -> None:
    for shape in [(1, 40), (3, 32, 32), (17,)]:
        model = create_model("mlp", input_shape=shape, hidden=[16])
        assert model(torch.randn(2, *shape)).shape == (2, 10)
    with pytest.raises(ModelError, match="hidden"):
        create_model("mlp", hidden=[0])


def test_bad_options_are_model_errors() -> None:
    with pytest.raises(ModelError, match="shortcut"):
        create_model("resnet20", shortcut="C")
    with pytest.raises(ModelError, match="patch_size"):
        create_model("vit_tiny", input_shape=(3, 30, 30), patch_size=4)
    with pytest.raises(ModelError, match="lenet5"):
        create_model("lenet5", input_shape=(1, 3, 3))
