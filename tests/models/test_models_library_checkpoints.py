"""Save/load round trips of torchvision, timm and Hugging Face transformers models.

Every model has random weights (nothing is downloaded). A test is skipped only when its library
is not installed. Outputs of the reloaded model must match the original within 1e-5 (eval mode;
train mode too for GoogLeNet and Inception-v3, whose auxiliary heads only run in training).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from leandl.checkpoint import load, read_meta, save
from leandl.errors import CheckpointError, ModelError, UsageError
from leandl.models import create_model, derive_spec, from_hf, is_registry_name
from leandl.spec import get_spec

TOL = 1e-5


def _lib(package: str) -> Any:
    """The library (torchvision through leandl's import shim), or skip when it is not installed."""
    from leandl.models.factory import _import_adapter

    try:
        return _import_adapter(package)
    except ModelError:
        pytest.skip(f"{package} is not installed")


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "to_tuple"):  # transformers ModelOutput
        out = out.to_tuple()
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, tuple | list):
        return [t for o in out for t in _tensors(o)]
    return []


def _call(model: nn.Module, x: Any) -> list[torch.Tensor]:
    with torch.no_grad():
        return _tensors(model(**x) if isinstance(x, dict) else model(x))


def _max_diff(a: nn.Module, b: nn.Module, x: Any, seed: int | None = None) -> float:
    if seed is not None:
        torch.manual_seed(seed)
    out_a = _call(a, x)
    if seed is not None:
        torch.manual_seed(seed)
    out_b = _call(b, x)
    assert len(out_a) == len(out_b) > 0
    assert all(p.shape == q.shape for p, q in zip(out_a, out_b, strict=True))
    return max(float((p - q).abs().max()) for p, q in zip(out_a, out_b, strict=True))


def _round_trip(model: nn.Module, x: Any, path: Path, **save_kw: Any) -> nn.Module:
    model.eval()
    save(model, path, **save_kw)
    loaded = load(path)
    assert not loaded.training
    assert _max_diff(model, loaded, x) <= TOL
    return loaded


# --- torchvision ----------------------------------------------------------------------------------

_TV = [
    ("resnet18", {}, 32),
    ("mobilenet_v3_small", {}, 32),
    ("mnasnet0_5", {}, 32),  # its _load_from_state_dict needs the recorded module version
    ("googlenet", {}, 32),
    ("googlenet", {"aux_logits": False, "transform_input": True, "init_weights": False}, 32),
    ("inception_v3", {"aux_logits": False, "init_weights": False}, 75),
    ("efficientnet_b0", {}, 32),
    pytest.param("inception_v3", {}, 75, marks=pytest.mark.slow),
    pytest.param("swin_t", {}, 32, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("arch", "kwargs", "size"), _TV)
def test_torchvision_round_trip(tmp_path: Path, arch: str, kwargs: dict[str, Any], size: int) -> None:
    _lib("torchvision")
    torch.manual_seed(0)
    model = create_model(f"torchvision:{arch}", num_classes=7, **kwargs)
    _round_trip(model, torch.randn(2, 3, size, size), tmp_path / "ck")
    assert read_meta(tmp_path / "ck")["spec"] == {"name": f"torchvision:{arch}", "kwargs": {"num_classes": 7, **kwargs}}


def test_mnasnet_versions_recorded(tmp_path: Path) -> None:
    _lib("torchvision")
    save(create_model("torchvision:mnasnet0_5", num_classes=3), tmp_path / "ck")
    assert read_meta(tmp_path / "ck")["state_dict_metadata"][""] == {"version": 2}


def _train_mode_matches(model: nn.Module, path: Path, size: int, outputs: int) -> float:
    """Save/load, then compare train-mode outputs (same dropout masks); returns their max diff."""
    model.eval()
    save(model, path)
    loaded = load(path)
    x = torch.randn(2, 3, size, size)
    model.train()
    loaded.train()
    torch.manual_seed(1)  # the same dropout masks for both
    out_a = _call(model, x)
    torch.manual_seed(1)
    out_b = _call(loaded, x)
    assert len(out_a) == len(out_b) == outputs  # logits (+ auxiliary logits)
    diff = max(float((p - q).abs().max()) for p, q in zip(out_a, out_b, strict=True))
    assert diff <= TOL
    model.eval()
    loaded.eval()
    assert _max_diff(model, loaded, x) <= TOL  # batch-norm statistics were updated alike
    return diff


def test_googlenet_train_mode(tmp_path: Path) -> None:
    _lib("torchvision")
    torch.manual_seed(0)
    model = create_model("torchvision:googlenet", num_classes=5)
    assert _train_mode_matches(model, tmp_path / "ck", 32, outputs=3) <= TOL


@pytest.mark.slow
def test_inception_v3_train_mode(tmp_path: Path) -> None:
    _lib("torchvision")
    torch.manual_seed(0)
    # 299 is the smallest input the auxiliary head accepts (it runs only in training)
    model = create_model("torchvision:inception_v3", num_classes=5, init_weights=False)
    assert _train_mode_matches(model, tmp_path / "ck", 299, outputs=2) <= TOL


def test_inception_v3_without_aux_train_mode(tmp_path: Path) -> None:
    _lib("torchvision")
    torch.manual_seed(0)
    model = create_model("torchvision:inception_v3", num_classes=5, aux_logits=False, transform_input=True,
                         init_weights=False)
    assert _train_mode_matches(model, tmp_path / "ck", 75, outputs=1) <= TOL


def test_plain_torchvision_model_is_recognised(tmp_path: Path) -> None:
    tv = _lib("torchvision")
    torch.manual_seed(0)
    model = tv.models.mobilenet_v3_small(num_classes=4)
    _round_trip(model, torch.randn(2, 3, 32, 32), tmp_path / "ck")
    assert read_meta(tmp_path / "ck")["spec"] == {"name": "torchvision:mobilenet_v3_small",
                                                   "kwargs": {"num_classes": 4}}


def test_plain_torchvision_model_with_changed_options_needs_spec(tmp_path: Path) -> None:
    tv = _lib("torchvision")
    model = tv.models.mobilenet_v3_small(num_classes=4, dropout=0.5)
    with pytest.raises(CheckpointError, match=r"classifier\.2\.p.*spec="):
        save(model, tmp_path / "ck")
    _round_trip(model, torch.randn(2, 3, 32, 32), tmp_path / "ck",
                spec={"name": "torchvision:mobilenet_v3_small", "kwargs": {"num_classes": 4, "dropout": 0.5}})


def test_torchvision_pretrained_needs_trust() -> None:
    with pytest.raises(ModelError, match=r"'weights'='DEFAULT' downloads.*trust=True"):
        create_model("torchvision:resnet18", weights="DEFAULT")


def test_torchvision_weight_free_spec_of_a_pretrained_build() -> None:
    tv = _lib("torchvision")
    from leandl.models.factory import _weight_free_kwargs

    # what googlenet(weights=...) builds: 1000 classes, transform_input on, no auxiliary heads
    model = tv.models.googlenet(num_classes=1000, transform_input=True, aux_logits=False, init_weights=False)
    model.aux_logits, model.aux1, model.aux2 = False, None, None
    assert _weight_free_kwargs("torchvision:googlenet", {"weights": "DEFAULT"}, model) == {
        "num_classes": 1000, "aux_logits": False, "transform_input": True}
    # a build the weight-free spec cannot reproduce keeps its weights kwarg (loading needs trust)
    model.fc = nn.Sequential(nn.Linear(1024, 3))
    assert _weight_free_kwargs("torchvision:googlenet", {"weights": "DEFAULT"}, model) == {"weights": "DEFAULT"}


def test_detection_builder_does_not_download_its_backbone() -> None:
    _lib("torchvision")
    model = create_model("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=3)
    assert get_spec(model) == {"name": "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",
                               "kwargs": {"num_classes": 3}}


# --- timm -----------------------------------------------------------------------------------------

_TIMM = [
    ("resnet18", {}),
    ("vit_tiny_patch16_224", {"img_size": 32}),
    ("convnext_atto", {}),
]


@pytest.mark.parametrize(("arch", "kwargs"), _TIMM)
def test_timm_round_trip(tmp_path: Path, arch: str, kwargs: dict[str, Any]) -> None:
    _lib("timm")
    torch.manual_seed(0)
    model = create_model(f"timm:{arch}", num_classes=6, **kwargs)
    loaded = _round_trip(model, torch.randn(2, 3, 32, 32), tmp_path / "ck")
    assert type(loaded) is type(model)


@pytest.mark.parametrize(("arch", "kwargs", "expected"), [
    ("resnet18", {"in_chans": 1}, {"num_classes": 6, "in_chans": 1}),
    ("vit_tiny_patch16_224", {"img_size": 32}, {"num_classes": 6, "img_size": [32, 32]}),
])
def test_plain_timm_model_is_recognised(tmp_path: Path, arch: str, kwargs: dict[str, Any],
                                        expected: dict[str, Any]) -> None:
    timm = _lib("timm")
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=6, **kwargs)
    assert derive_spec(model) == {"name": f"timm:{arch}", "kwargs": expected}
    channels = kwargs.get("in_chans", 3)
    _round_trip(model, torch.randn(2, channels, 32, 32), tmp_path / "ck")


def test_plain_timm_model_with_unrecorded_option_needs_spec(tmp_path: Path) -> None:
    timm = _lib("timm")
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=6, global_pool="avg")
    with pytest.raises(CheckpointError, match=r"global_pool.*'avg' in the model vs 'token' rebuilt.*spec="):
        save(model, tmp_path / "ck")
    spec = {"name": "timm:vit_tiny_patch16_224", "kwargs": {"img_size": 32, "num_classes": 6, "global_pool": "avg"}}
    _round_trip(model, torch.randn(2, 3, 32, 32), tmp_path / "ck", spec=spec)


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"pretrained": True}, "pretrained"),
    ({"checkpoint_path": "weights.pth"}, "checkpoint_path"),
    ({"pretrained_cfg_overlay": {"file": "x.bin"}}, "pretrained_cfg_overlay.file"),
])
def test_timm_weight_sources_need_trust(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ModelError, match=rf"{key}.*trust=True"):
        create_model("timm:resnet18", **kwargs)
    with pytest.raises(ModelError, match="hf-hub:.*trust=True"):
        create_model("timm:hf-hub:timm/resnet18.a1_in1k")


# --- Hugging Face transformers ------------------------------------------------------------------

_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
         "vocab_size": 100, "max_position_embeddings": 32}
_GPT2 = {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 32, "vocab_size": 100,
         "bos_token_id": 0, "eos_token_id": 0}
_LLAMA = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 32}
_VIT = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 64}
_T5 = {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 100}
_WHISPER = {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 64,
            "decoder_layers": 1, "decoder_attention_heads": 4, "decoder_ffn_dim": 64, "num_mel_bins": 16,
            "max_source_positions": 16, "max_target_positions": 16}


def _ids() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(1, 100, (2, 8), generator=g), "attention_mask": torch.ones(2, 8, dtype=torch.long)}


_HF = [
    ("BertModel", _BERT, _ids),
    ("GPT2Model", _GPT2, _ids),
    ("LlamaModel", _LLAMA, _ids),
    ("ViTModel", _VIT, lambda: {"pixel_values": torch.randn(2, 3, 32, 32)}),
    ("T5EncoderModel", _T5, _ids),
    ("whisper.modeling_whisper.WhisperEncoder", _WHISPER, lambda: {"input_features": torch.randn(2, 16, 32)}),
]


@pytest.mark.parametrize(("cls", "config", "inputs"), _HF, ids=[c[0].rsplit(".", 1)[-1] for c in _HF])
def test_hf_round_trip(tmp_path: Path, cls: str, config: dict[str, Any], inputs: Any) -> None:
    _lib("transformers")
    torch.manual_seed(0)
    model = create_model(f"hf:{cls}", config=config)
    assert model.training  # as nn.Module builds it; leandl does not force eval()
    loaded = _round_trip(model, inputs(), tmp_path / "ck")
    assert type(loaded) is type(model)
    for key, value in config.items():
        assert getattr(loaded.config, key) == value


@pytest.mark.parametrize(("cls", "config", "inputs"), _HF, ids=[c[0].rsplit(".", 1)[-1] for c in _HF])
def test_plain_hf_model_is_recognised(tmp_path: Path, cls: str, config: dict[str, Any], inputs: Any) -> None:
    _lib("transformers")
    from leandl.models.hf import _resolve

    klass = _resolve(cls)
    torch.manual_seed(0)
    model = klass(klass.config_class(**config))  # built by the user, no leandl spec
    _round_trip(model, inputs(), tmp_path / "ck")
    spec = read_meta(tmp_path / "ck")["spec"]
    assert spec["name"] == f"hf:{cls}" and is_registry_name(spec["name"])
    assert "_name_or_path" not in spec["kwargs"]["config"]
    assert "transformers_version" not in spec["kwargs"]["config"]


def test_hf_tied_weights_stay_tied(tmp_path: Path) -> None:
    _lib("transformers")
    torch.manual_seed(0)
    model = create_model("hf:GPT2LMHeadModel", config=_GPT2)
    loaded = _round_trip(model, _ids(), tmp_path / "ck")
    assert loaded.lm_head.weight is loaded.transformer.wte.weight


def test_hf_bfloat16_round_trip_is_exact(tmp_path: Path) -> None:
    _lib("transformers")
    torch.manual_seed(0)
    model = create_model("hf:LlamaForCausalLM", config=_LLAMA).to(torch.bfloat16)
    loaded = _round_trip(model, _ids(), tmp_path / "ck")
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert _max_diff(model, loaded, _ids()) == 0.0  # rotary tables in bfloat16 as well


def test_from_hf_records_spec_and_eager_attention(tmp_path: Path) -> None:
    transformers = _lib("transformers")
    config = transformers.LlamaConfig(**_LLAMA)
    config._attn_implementation = "eager"
    model = transformers.LlamaForCausalLM(config)
    assert from_hf(model) is model
    spec = get_spec(model)
    assert spec["name"] == "hf:LlamaForCausalLM" and spec["kwargs"]["attn_implementation"] == "eager"
    assert spec["kwargs"]["config"]["num_key_value_heads"] == 2
    loaded = _round_trip(model, _ids(), tmp_path / "ck")
    assert loaded.config._attn_implementation == "eager"
    with pytest.raises(ModelError, match="not a transformers"):
        from_hf(nn.Linear(2, 2))


def test_hf_num_classes_fills_num_labels() -> None:
    _lib("transformers")
    model = create_model("hf:BertForSequenceClassification", config=_BERT, num_classes=5, input_shape=[8])
    assert model.config.num_labels == 5 and model.classifier.out_features == 5


def test_hf_bad_names_and_kwargs() -> None:
    _lib("transformers")
    with pytest.raises(UsageError, match="unknown transformers model class"):
        create_model("hf:NoSuchModelAnywhere")
    with pytest.raises(UsageError, match="not a transformers model class"):
        create_model("hf:AutoModel")  # a factory, not a PreTrainedModel subclass
    with pytest.raises(UsageError, match="not a transformers model class"):
        create_model("hf:BertConfig")
    with pytest.raises(UsageError, match="unknown transformers model class"):
        create_model("hf:os.system")  # dotted names resolve under transformers.models only
    with pytest.raises(UsageError, match="takes no keyword 'hidden_size'"):
        create_model("hf:BertModel", hidden_size=32)


def test_hf_hostile_config_loads_only_with_trust(tmp_path: Path) -> None:
    _lib("transformers")
    torch.manual_seed(0)
    save(create_model("hf:BertModel", config=_BERT), tmp_path / "ck")
    meta_path = tmp_path / "ck" / "leandl.json"
    meta = json.loads(meta_path.read_text())
    meta["spec"]["kwargs"]["config"]["auto_map"] = {"AutoModel": "evil--modeling.EvilModel"}
    meta["spec"]["kwargs"]["config"]["_name_or_path"] = "/somewhere/else"  # dropped, never refused
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"'config\.auto_map' points at remote code.*trust=True"):
        load(tmp_path / "ck")
    load(tmp_path / "ck", trust=True)  # building from a config never follows auto_map


def test_hf_spec_on_the_meta_device_is_cheap() -> None:
    transformers = _lib("transformers")
    big = {**_LLAMA, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000}
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**big))
    spec = derive_spec(model)  # checked by a meta rebuild: no 7B allocation
    assert spec["kwargs"]["config"]["num_hidden_layers"] == 32


def test_hf_risky_config_defaults_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = _lib("transformers")
    to_dict = transformers.BertConfig.to_dict
    # a config class whose *default* would download backbone weights (older DetrConfig did)
    monkeypatch.setattr(transformers.BertConfig, "to_dict",
                        lambda self: {"use_pretrained_backbone": True, **to_dict(self)})
    with pytest.raises(ModelError, match=r"use_pretrained_backbone'=True.*BertConfig's defaults.*trust=True"):
        create_model("hf:BertModel", config=_BERT)
    model = create_model("hf:BertModel", config=_BERT, trust=True)
    assert get_spec(model)["kwargs"]["config"]["use_pretrained_backbone"] is False  # weight-free spec
