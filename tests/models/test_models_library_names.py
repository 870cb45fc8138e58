"""Library model names (``torchvision:``, ``timm:``, ``hf:``): what they may ask for without trust."""

from __future__ import annotations

import sys

import pytest

from leandl.errors import ModelError
from leandl.models import create_model, is_registry_name, spec_risks
from leandl.models.safety import looks_like_path_or_url


def test_library_names_are_registry_names() -> None:
    assert is_registry_name("hf:BertModel") and is_registry_name("hf:whisper.modeling_whisper.WhisperEncoder")
    assert is_registry_name("torchvision:resnet18") and is_registry_name("timm:convnext_atto")
    assert not is_registry_name("transformers:BertModel")  # an import path, not the adapter


@pytest.mark.parametrize("value", [
    "/etc/passwd", "./w.pth", "../w", "~/w", "C:\\w.bin", "c:/w", "org/model", "https://x.invalid/w",
    "hf-hub:org/model", "hf_hub:org/model", "local-dir:w", "file:w", "weights.safetensors", "W.PTH", "..",
])
def test_paths_and_urls_are_recognised(value: str) -> None:
    assert looks_like_path_or_url(value)


@pytest.mark.parametrize("value", ["resnet18", "avg", "gelu_new", "layernorm", "DEFAULT", "token", "", "a.b"])
def test_plain_names_are_not_paths(value: str) -> None:
    assert not looks_like_path_or_url(value)


def test_spec_risks_name_every_key() -> None:
    risks = spec_risks("timm:resnet18", {"pretrained": True, "checkpoint_path": "w.pth",
                                          "pretrained_cfg_overlay": {"hf_hub_id": "org/m"}})
    text = "\n".join(risks)
    for key in ("'pretrained'=True", "'checkpoint_path'", "'pretrained_cfg_overlay.hf_hub_id'"):
        assert key in text
    assert spec_risks("torchvision:resnet18", {"weights": None, "weights_backbone": None}) == []
    assert spec_risks("hf:BertModel", {"config": {"layers": [{"path": "/x"}]}}) == [
        "'config.layers[0].path'='/x' looks like a path or URL"]
    assert spec_risks("my_pkg.models:build", {"weights": "DEFAULT"}) == []  # import paths need trust anyway


@pytest.mark.parametrize(("name", "kwargs", "key"), [
    ("torchvision:resnet18", {"weights": "IMAGENET1K_V1"}, "weights"),
    ("torchvision:resnet18", {"weights_backbone": "DEFAULT"}, "weights_backbone"),
    ("timm:resnet18", {"pretrained": True}, "pretrained"),
    ("timm:hf-hub:org/model", {}, "hf-hub:org/model"),
    ("hf:BertModel", {"config": {"auto_map": {"AutoModel": "m.M"}}}, "auto_map"),
    ("hf:BertModel", {"config": {"trust_remote_code": True}}, "trust_remote_code"),
])
def test_create_model_refuses_risky_kwargs_before_importing_the_library(
        name: str, kwargs: dict, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for package in ("torchvision", "timm", "transformers"):
        monkeypatch.setitem(sys.modules, package, None)  # importing any of them would fail
    with pytest.raises(ModelError, match=rf"{key}.*pass trust=True"):
        create_model(name, **kwargs)


def test_hf_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelError, match=r"'hf:\.\.\.' need the 'transformers' package.*pip install transformers"):
        create_model("hf:BertModel", config={})


def test_trusted_build_records_weight_free_spec(tmp_path) -> None:
    from leandl.checkpoint import load, read_meta, save
    from leandl.models.factory import _import_adapter
    from leandl.spec import get_spec

    try:
        _import_adapter("timm")
    except ModelError:
        pytest.skip("timm is not installed")
    overlay = {"file": str(tmp_path / "never-read.pth")}  # only read when pretrained=True
    model = create_model("timm:resnet18", trust=True, num_classes=3, pretrained_cfg_overlay=overlay)
    assert get_spec(model) == {"name": "timm:resnet18", "kwargs": {"num_classes": 3}}
    save(model, tmp_path / "ck")
    assert read_meta(tmp_path / "ck")["spec"]["kwargs"] == {"num_classes": 3}
    load(tmp_path / "ck")  # no trust needed: the spec names only the architecture


def test_hf_backbone_names_are_risks_unless_timm() -> None:
    assert spec_risks("hf:DetrModel", {"config": {"backbone": "resnet50"}}) == [
        "'config.backbone'='resnet50' names a checkpoint transformers would fetch for the backbone"]
    assert spec_risks("hf:DetrModel", {"config": {"backbone": "resnet50", "use_timm_backbone": True}}) == []
    assert spec_risks("hf:DetrModel", {"config": {"backbone_config": {
        "model_type": "timm_backbone", "backbone": "resnet50"}}}) == []
    assert spec_risks("hf:DetrModel", {"config": {"backbone_config": {
        "model_type": "timm_backbone", "backbone": "hf-hub:org/evil"}}}) != []
