"""Structured pruning of models nobody here wrote: one test per library family.

Random init, small inputs; each prunes to 50 % of the MACs (landing within 2 %), keeps the
output shape, runs in train mode afterwards, and reloads from a leandl checkpoint exactly.
"""

from __future__ import annotations

import pytest
import torch

import leandl

pytestmark = pytest.mark.slow


def _roundtrip(model: torch.nn.Module, inputs, tmp_path) -> float:
    leandl.save(model, tmp_path / "ck")
    fresh = leandl.load(tmp_path / "ck")
    model.eval()
    fresh.eval()
    with torch.no_grad():
        a, b = _first(_call(model, inputs)), _first(_call(fresh, inputs))
    return float((a - b).abs().max())


def _call(model, inputs):
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def _first(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        return next(iter(out.values()))
    return out[0]


def _prune_and_check(model: torch.nn.Module, inputs, tmp_path) -> leandl.prune.api.PruneReport:
    model.eval()
    with torch.no_grad():
        ref = _first(_call(model, inputs))
    report = leandl.prune_(model, inputs, criterion="l1", target={"macs": 0.5}, round_to=8)
    assert abs(report.achieved["macs"] - 0.5) <= 0.02
    with torch.no_grad():
        assert _first(_call(model, inputs)).shape == ref.shape
    assert _roundtrip(model, inputs, tmp_path) <= 1e-5
    return report


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "shufflenet_v2_x0_5", "regnet_x_400mf",
                                  "googlenet"])
def test_torchvision_models_prune(arch: str, tmp_path) -> None:
    pytest.importorskip("torchvision")
    kw = {"aux_logits": True, "init_weights": False} if arch == "googlenet" else {}
    torch.manual_seed(0)
    model = leandl.create_model(f"torchvision:{arch}", num_classes=10, **kw)
    x = torch.randn(1, 3, 64, 64)
    _prune_and_check(model, x, tmp_path)
    model.train()
    out = model(torch.randn(2, 3, 64, 64))  # train-only branches (aux heads) were pruned too
    logits = out if isinstance(out, torch.Tensor) else out[0]
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ["convnext_atto", "vit_tiny_patch16_224", "ghostnet_100"])
def test_timm_models_prune(arch: str, tmp_path) -> None:
    pytest.importorskip("timm")
    kw = {"img_size": 64} if arch.startswith("vit") else {}
    torch.manual_seed(0)
    model = leandl.create_model(f"timm:{arch}", num_classes=10, **kw)
    report = _prune_and_check(model, torch.randn(1, 3, 64, 64), tmp_path)
    if arch.startswith("vit"):
        assert any(k.endswith(".attn") and b < a for k, (a, b) in report.widths.items())


_HF = {
    "bert": ("BertModel", {"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
                           "num_attention_heads": 4, "intermediate_size": 256}),
    "llama-gqa": ("LlamaModel", {"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
                                 "num_attention_heads": 8, "num_key_value_heads": 2,
                                 "intermediate_size": 256}),
    "gpt2": ("GPT2Model", {"vocab_size": 100, "n_embd": 64, "n_layer": 2, "n_head": 4}),
}


@pytest.mark.parametrize("family", sorted(_HF))
def test_hugging_face_models_prune_heads_and_units(family: str, tmp_path) -> None:
    pytest.importorskip("transformers")
    cls, config = _HF[family]
    torch.manual_seed(0)
    model = leandl.create_model(f"hf:{cls}", config=config)
    ids = torch.randint(0, 100, (1, 16))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    report = _prune_and_check(model, inputs, tmp_path)
    kinds = {k for k, (a, b) in report.widths.items() if b < a}
    assert any("attn" in k or "attention" in k for k in kinds)  # heads (KV groups for llama)
    assert any("mlp" in k or "intermediate" in k for k in kinds)  # MLP units


def test_uniform_llama_pruning_updates_config_for_from_pretrained(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = dict(_HF["llama-gqa"][1], head_dim=8)
    model = transformers.LlamaModel(transformers.LlamaConfig(**cfg)).eval()
    ids = torch.randint(0, 100, (1, 16))
    leandl.prune_(model, {"input_ids": ids}, target={"ratio": 0.5}, scope="layerwise")
    assert model.config.intermediate_size == 128 and model.config.num_key_value_heads == 1
    assert model.config.num_attention_heads == 4
    model.save_pretrained(tmp_path / "hf")
    again = transformers.LlamaModel.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        diff = (again(input_ids=ids).last_hidden_state - model(input_ids=ids).last_hidden_state)
    assert float(diff.abs().max()) <= 1e-5
