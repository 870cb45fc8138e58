"""create_model / list_models / is_registry_name: names, specs, import paths, adapters."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

from leandl.errors import ModelError, UsageError
from leandl.models import create_model, default_input_shape, is_registry_name, list_models
from leandl.spec import get_spec


def test_spec_recorded_with_tuples_as_lists() -> None:
    model = create_model("resnet20", num_classes=5, input_shape=(3, 16, 16), shortcut="A")
    assert get_spec(model) == {
        "name": "resnet20",
        "kwargs": {"num_classes": 5, "input_shape": [3, 16, 16], "shortcut": "A"},
    }


def test_spec_rebuilds_identical_architecture() -> None:
    model = create_model("mlp", input_shape=(1, 40), hidden=(32, 16))
    spec = get_spec(model)
    again = create_model(spec["name"], **spec["kwargs"])
    assert [p.shape for p in model.parameters()] == [p.shape for p in again.parameters()]


def test_non_json_kwargs_refused() -> None:
    with pytest.raises(ModelError, match="JSON"):
        create_model("mlp", hidden=torch.tensor([3]))


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(UsageError, match="did you mean 'resnet56'"):
        create_model("resnet65")
    with pytest.raises(UsageError, match="did you mean 'digits_cnn'"):
        create_model("digit_cnn")


def test_unknown_keyword_is_model_error() -> None:
    with pytest.raises(ModelError, match="resnet20.*depht"):
        create_model("resnet20", depht=3)


def test_list_models_pattern() -> None:
    assert list_models("resnet*") == ["resnet110", "resnet18", "resnet20", "resnet32", "resnet44",
                                      "resnet50", "resnet56"]
    assert list_models("wrn*_2") == ["wrn16_2", "wrn40_2"]
    assert list_models("nothing*") == []
    assert len(list_models()) == 19  # + condensenet_tiny, nas_cellnet


def test_is_registry_name() -> None:
    assert is_registry_name("resnet20")
    assert is_registry_name("torchvision:resnet18") and is_registry_name("timm:resnet18")
    assert not is_registry_name("my_pkg.models:build")
    assert not is_registry_name("resnet21")


def test_default_input_shape() -> None:
    assert default_input_shape("digits_cnn") == (1, 8, 8)
    assert default_input_shape("mnist1d_cnn") == (1, 40)
    assert default_input_shape("resnet56") == (3, 32, 32)


def _write_module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))


def test_import_path_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_module(tmp_path, "leandl_user_models", """
        from torch import nn

        def build(num_classes=10, width=4):
            return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, num_classes))

        def not_a_model(**kwargs):
            return 3
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    # input_shape is filled by the recipe runner; a factory without it still builds.
    model = create_model("leandl_user_models:build", num_classes=3, input_shape=(1, 8, 8), width=6)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    assert model[1].out_features == 6
    assert get_spec(model) == {"name": "leandl_user_models:build",
                               "kwargs": {"num_classes": 3, "input_shape": [1, 8, 8], "width": 6}}
    assert not is_registry_name("leandl_user_models:build")
    with pytest.raises(ModelError, match="has no attribute 'missing'"):
        create_model("leandl_user_models:missing")
    with pytest.raises(ModelError, match="returned int"):
        create_model("leandl_user_models:not_a_model")
    with pytest.raises(ModelError, match="cannot import module 'no_such_mod_xyz'"):
        create_model("no_such_mod_xyz:build")
    with pytest.raises(UsageError, match="import path"):
        create_model(":build")
    sys.modules.pop("leandl_user_models", None)


@pytest.mark.parametrize("package", ["torchvision", "timm"])
def test_adapter_missing_package_message(package: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` raise ImportError
    with pytest.raises(ModelError, match=rf"need the '{package}' package.*pip install {package}"):
        create_model(f"{package}:resnet18", num_classes=10)


def test_torchvision_adapter() -> None:
    pytest.importorskip("torchvision")
    model = create_model("torchvision:resnet18", num_classes=7, input_shape=(3, 32, 32))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert get_spec(model)["name"] == "torchvision:resnet18"
    with pytest.raises(ModelError, match="3-channel"):
        create_model("torchvision:resnet18", input_shape=(1, 8, 8))


def test_timm_adapter() -> None:
    pytest.importorskip("timm")
    model = create_model("timm:resnet18", num_classes=7, input_shape=(1, 32, 32))
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    assert get_spec(model)["kwargs"] == {"num_classes": 7, "input_shape": [1, 32, 32]}
