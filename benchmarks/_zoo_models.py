"""Model list, builders, inputs and Torch-Pruning settings for ``benchmarks/zoo.py``.

Three families, all random init (nothing is downloaded):

- ``torchvision:NAME``: every classification model in ``torchvision.models.list_models(module=
  torchvision.models)``, 1000 classes, built with ``leandl.create_model("torchvision:NAME")``.
  CNNs run at 160x160 (any size works for them; the MACs fraction barely depends on it),
  ViT/Swin/MaxViT at 224, VGG/AlexNet at 224 (their AdaptiveAvgPool2d to 7x7/6x6 exports to
  ONNX only from a multiple of that size), Inception v3 at 299 (``--full-res``: 224 for all
  but Inception).
  GoogLeNet and Inception v3 are built without their auxiliary heads (Torch-Pruning's own
  torchvision example does the same; eval mode never runs them).
- ``timm:NAME``: a fixed list of 30 architectures, ``pretrained=False``, 1000 classes.
- ``hf:NAME``: 8 Hugging Face ``transformers`` families with small configs (hidden 128,
  2 layers, MLP 512, sequence 32), built by :func:`build_hf` through
  ``leandl.create_model("_zoo_models:build_hf", family=NAME)`` so that leandl can rebuild them
  from a checkpoint (``leandl.load(dir, trust=True)``; the benchmarks folder must be on
  ``sys.path``, which ``zoo.py`` ensures).

Every builder seeds torch first, so both tools start from identical weights.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["Entry", "TIMM_MODELS", "HF_FAMILIES", "QUICK", "all_entries", "get_entry",
           "select", "build_hf", "make_inputs", "tp_settings", "import_torchvision"]

NUM_CLASSES = 1000

TIMM_MODELS = [
    "resnet18", "efficientnet_b0", "mobilenetv3_small_100", "convnext_atto", "regnetx_002",
    "ghostnet_100", "mixer_s16_224", "vit_tiny_patch16_224", "deit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224", "levit_128s", "coatnet_0_rw_224", "efficientformer_l1",
    "mobilevit_xxs", "edgenext_xx_small", "repvgg_a0", "dla34", "densenet121", "inception_v3",
    "hrnet_w18_small", "cspresnet50", "rexnet_100", "fbnetc_100", "tinynet_e", "lcnet_050",
    "poolformer_s12", "resmlp_12_224", "nfnet_l0", "xcit_nano_12_p16_224", "convmixer_768_32",
]
# timm models whose resolution is free (convolutional, or relative/no positional encoding): 160.
_TIMM_FLEXIBLE = {
    "resnet18", "efficientnet_b0", "mobilenetv3_small_100", "convnext_atto", "regnetx_002",
    "ghostnet_100", "repvgg_a0", "dla34", "densenet121", "hrnet_w18_small", "cspresnet50",
    "rexnet_100", "fbnetc_100", "lcnet_050", "poolformer_s12", "nfnet_l0", "convmixer_768_32",
    "edgenext_xx_small", "mobilevit_xxs",
}

HF_FAMILIES = ["bert", "bert_cls", "distilbert", "gpt2", "vit", "llama_gqa", "t5_encoder",
               "whisper_encoder"]

# --quick: a handful that exercise every family and both input kinds.
QUICK = ["torchvision:resnet18", "torchvision:mobilenet_v3_small", "timm:resnet18", "hf:bert"]

HF_SEQ = 32  # tokens per sample for the text models
HF_VOCAB = 1000
HF_IMAGE = 32  # ViT image size (patch 8 -> 16 patches)
WHISPER_MELS = 80
WHISPER_POSITIONS = 32  # encoder positions; input_features length is twice that


@dataclass
class Entry:
    """One model of the zoo."""

    family: str  # torchvision | timm | hf
    name: str
    image_size: int | None = None  # square image side for vision models
    gflops: float | None = None  # published cost (torchvision metadata), for time limits
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.family}:{self.name}"

    def spec(self) -> tuple[str, dict[str, Any]]:
        """``(name, kwargs)`` for ``leandl.create_model``."""
        if self.family == "torchvision":
            kw: dict[str, Any] = {"num_classes": NUM_CLASSES}
            if self.name in ("googlenet", "inception_v3"):
                kw["aux_logits"] = False
                kw["init_weights"] = True
            return f"torchvision:{self.name}", kw
        if self.family == "timm":
            return f"timm:{self.name}", {"num_classes": NUM_CLASSES}
        if has_leandl_hf_adapter():  # rebuilt from class + config: loads without trust
            cls, cfg = _hf_config_kwargs(self.name)
            return f"hf:{cls}", {"config": cfg}
        return "_zoo_models:build_hf", {"family": self.name}  # user code: load needs trust

    def needs_trust(self) -> bool:
        """Whether leandl.load must be told to trust this model's spec (an import path)."""
        return self.spec()[0].startswith("_zoo_models:")

    def build(self, seed: int = 0) -> nn.Module:
        """The model (random init, seeded, eval mode), with leandl's build spec on it."""
        import leandl

        name, kw = self.spec()
        torch.manual_seed(seed)
        return leandl.create_model(name, **kw).eval()

    def time_scale(self) -> float:
        """How much longer than an average model this one may take (1 .. 4)."""
        if self.gflops is None:
            return 2.0 if self.name in ("convmixer_768_32", "nfnet_l0") else 1.0
        return min(4.0, max(1.0, self.gflops / 8.0))


def import_torchvision() -> Any:
    """torchvision, through leandl's compatibility shim when there is one."""
    try:
        from leandl._compat_torchvision import import_torchvision as _imp  # type: ignore
    except ImportError:
        import torchvision

        return torchvision
    return _imp()


def _torchvision_entries(full_res: bool) -> list[Entry]:
    tv = import_torchvision()
    out = []
    for name in tv.models.list_models(module=tv.models):
        if name == "inception_v3":
            size = 299
        elif name.startswith(("vit_", "swin", "maxvit", "vgg", "alexnet")) or full_res:
            size = 224  # fixed resolution, or AdaptiveAvgPool2d to 7x7/6x6 (ONNX needs a factor)
        else:
            size = 160
        gflops = None
        try:
            weights = list(tv.models.get_model_weights(name))
            gflops = float(weights[0].meta.get("_ops")) if weights else None
        except Exception:  # metadata only steers time limits
            gflops = None
        out.append(Entry("torchvision", name, size, gflops))
    return out


def _timm_entries(full_res: bool) -> list[Entry]:
    out = []
    for name in TIMM_MODELS:
        if name == "inception_v3":
            size = 299
        elif name == "tinynet_e":
            size = 106  # its native resolution, already small
        elif name in _TIMM_FLEXIBLE and not full_res:
            size = 160
        else:
            size = 224
        out.append(Entry("timm", name, size))
    return out


def all_entries(families: list[str] | None = None, full_res: bool = False,
                errors: dict[str, str] | None = None) -> list[Entry]:
    """Every model of the selected families (a family that cannot be listed goes in errors)."""
    fams = families or ["torchvision", "timm", "hf"]
    out: list[Entry] = []
    for fam in fams:
        try:
            if fam == "torchvision":
                out += _torchvision_entries(full_res)
            elif fam == "timm":
                out += _timm_entries(full_res)
            elif fam == "hf":
                out += [Entry("hf", n, HF_IMAGE if n == "vit" else None) for n in HF_FAMILIES]
            else:
                raise ValueError(f"unknown family {fam!r}")
        except Exception as exc:  # e.g. torchvision does not import beside this torch
            if errors is None:
                raise
            errors[fam] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return out


def get_entry(key: str, full_res: bool = False) -> Entry:
    """The entry for ``FAMILY:NAME`` (without listing a whole family where avoidable)."""
    fam, _, name = key.partition(":")
    if fam == "timm":
        return next(e for e in _timm_entries(full_res) if e.name == name) if name in TIMM_MODELS \
            else Entry("timm", name, 224)
    if fam == "hf":
        if name not in HF_FAMILIES:
            raise ValueError(f"unknown hf family {name!r}; one of {HF_FAMILIES}")
        return Entry("hf", name, HF_IMAGE if name == "vit" else None)
    if fam == "torchvision":
        for e in _torchvision_entries(full_res):
            if e.name == name:
                return e
        raise ValueError(f"unknown torchvision classification model {name!r}")
    raise ValueError(f"model key must be torchvision:NAME, timm:NAME or hf:NAME, got {key!r}")


def select(entries: list[Entry], only: list[str] | None) -> list[Entry]:
    """Entries whose key or name matches any pattern (fnmatch) of ``only``."""
    if not only:
        return entries
    return [e for e in entries
            if any(fnmatch.fnmatchcase(e.key, p) or fnmatch.fnmatchcase(e.name, p) for p in only)]


# ---------------------------------------------------------------------------------------------
# Hugging Face transformers: small configs, random init
# ---------------------------------------------------------------------------------------------

# family -> (transformers class, as leandl's "hf:" adapter names it; config kwargs)
_HF_SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "bert": ("BertModel", dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=512, max_position_embeddings=64)),
    "bert_cls": ("BertForSequenceClassification",
                 dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=512, max_position_embeddings=64, num_labels=2)),
    "distilbert": ("DistilBertModel", dict(dim=128, n_layers=2, n_heads=4, hidden_dim=512,
                                           max_position_embeddings=64)),
    "gpt2": ("GPT2Model", dict(n_embd=128, n_layer=2, n_head=4, n_inner=512, n_positions=64,
                               use_cache=False)),
    "vit": ("ViTModel", dict(image_size=HF_IMAGE, patch_size=8, hidden_size=128,
                             num_hidden_layers=2, num_attention_heads=4, intermediate_size=512)),
    "llama_gqa": ("LlamaModel", dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                                     num_attention_heads=8, num_key_value_heads=2,
                                     max_position_embeddings=64, use_cache=False)),
    "t5_encoder": ("T5EncoderModel", dict(d_model=128, d_kv=32, d_ff=512, num_layers=2,
                                          num_heads=4, use_cache=False)),
    "whisper_encoder": ("whisper.modeling_whisper.WhisperEncoder",
                        dict(d_model=128, encoder_layers=2, encoder_attention_heads=4,
                             encoder_ffn_dim=512, decoder_layers=1, decoder_attention_heads=4,
                             decoder_ffn_dim=512, num_mel_bins=WHISPER_MELS,
                             max_source_positions=WHISPER_POSITIONS, max_target_positions=64,
                             use_cache=False)),
}


def _hf_config_kwargs(family: str) -> tuple[str, dict[str, Any]]:
    if family not in _HF_SPECS:
        raise ValueError(f"unknown hf family {family!r}; one of {HF_FAMILIES}")
    cls, cfg = _HF_SPECS[family]
    if family != "vit":
        cfg = {**cfg, "vocab_size": HF_VOCAB}
    return cls, cfg


def has_leandl_hf_adapter() -> bool:
    """True when leandl.create_model understands ``"hf:ClassName"`` (leandl.models.hf)."""
    try:
        import leandl.models.hf  # noqa: F401
    except ImportError:
        return False
    return True


def build_hf(family: str) -> nn.Module:
    """A small random-init transformers model of ``family`` (see ``HF_FAMILIES``)."""
    import importlib

    import transformers as hf

    cls_name, cfg = _hf_config_kwargs(family)
    if "." in cls_name:
        mod, _, attr = cls_name.rpartition(".")
        cls = getattr(importlib.import_module("transformers.models." + mod), attr)
    else:
        cls = getattr(hf, cls_name)
    return cls(cls.config_class(**cfg))


def make_inputs(entry: Entry, batch: int, seed: int = 0) -> Any:
    """Example inputs: an image tensor, or a dict of keyword inputs for the hf models."""
    g = torch.Generator().manual_seed(seed)
    if entry.family != "hf":
        s = entry.image_size or 224
        return torch.randn(batch, 3, s, s, generator=g)
    if entry.name == "vit":
        return {"pixel_values": torch.randn(batch, 3, HF_IMAGE, HF_IMAGE, generator=g)}
    if entry.name == "whisper_encoder":
        return {"input_features": torch.randn(batch, WHISPER_MELS, 2 * WHISPER_POSITIONS,
                                              generator=g)}
    ids = torch.randint(5, HF_VOCAB, (batch, HF_SEQ), generator=g, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": torch.ones(batch, HF_SEQ, dtype=torch.long)}


# ---------------------------------------------------------------------------------------------
# Torch-Pruning settings, after its own examples (torchvision_pruning.py, prune_timm_models.py,
# prune_timm_vit.py, prune_hf_bert.py, LLMs/prune_llm.py)
# ---------------------------------------------------------------------------------------------

@dataclass
class TPSettings:
    """What MetaPruner gets besides the shared settings, and the fix-up after pruning."""

    ignored_layers: list[nn.Module] = field(default_factory=list)
    num_heads: dict[nn.Module, int] = field(default_factory=dict)
    prune_num_heads: bool = False
    prune_head_dims: bool = True
    round_to: int = 8
    post_fix: Callable[[nn.Module, Any], None] | None = None
    notes: list[str] = field(default_factory=list)


def _classifiers(model: nn.Module) -> list[nn.Module]:
    """Layers with exactly NUM_CLASSES outputs (TP's torchvision/timm examples do the same)."""
    out = []
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == NUM_CLASSES:
            out.append(m)
        elif isinstance(m, nn.Conv2d) and m.out_channels == NUM_CLASSES:
            out.append(m)
    return out


def _first(m: nn.Module, names: tuple[str, ...]) -> Any:
    for n in names:
        if hasattr(m, n):
            return getattr(m, n)
    return None


def _hf_attention_modules(model: nn.Module) -> list[tuple[nn.Module, nn.Module, nn.Module, nn.Module]]:
    """(attention module, q, k, v) for every attention block with separate q/k/v Linears."""
    out = []
    for m in model.modules():
        q = _first(m, ("query", "q_proj", "q_lin", "q"))
        k = _first(m, ("key", "k_proj", "k_lin", "k"))
        v = _first(m, ("value", "v_proj", "v_lin", "v"))
        if all(isinstance(t, nn.Linear) for t in (q, k, v)):
            out.append((m, q, k, v))
    return out


def _head_size(m: nn.Module, q: nn.Linear) -> int:
    hs = _first(m, ("attention_head_size", "head_dim", "key_value_proj_dim"))
    if hs is None:
        heads = _first(m, ("num_attention_heads", "num_heads", "n_heads"))
        hs = q.out_features // int(heads)
    return int(hs)


def _fix_hf_attention(model: nn.Module, pruner: Any) -> None:
    """Update head counts and widths that HF attention modules keep as plain attributes.

    Mirrors the attribute updates in Torch-Pruning's prune_hf_bert.py / prune_llm.py, for the
    attribute names used by BERT, DistilBERT, ViT, LLaMA, T5 and Whisper.
    """
    for m, q, k, _ in _hf_attention_modules(model):
        hs = getattr(m, "_zoo_head_size", None) or _head_size(m, q)
        heads = q.out_features // hs
        kv_heads = k.out_features // hs
        for name in ("num_attention_heads", "num_heads", "n_heads"):
            if isinstance(getattr(m, name, None), int):
                setattr(m, name, heads)
        for name in ("all_head_size", "inner_dim"):
            if isinstance(getattr(m, name, None), int):
                setattr(m, name, q.out_features)
        if isinstance(getattr(m, "dim", None), int) and hasattr(m, "q_lin"):  # DistilBERT
            m.dim = q.out_features
        if isinstance(getattr(m, "num_key_value_heads", None), int):
            m.num_key_value_heads = kv_heads
        if isinstance(getattr(m, "num_key_value_groups", None), int) and kv_heads:
            m.num_key_value_groups = heads // kv_heads
        cfg = getattr(m, "config", None)
        if cfg is not None and hasattr(cfg, "num_key_value_heads") and hasattr(m, "k_proj"):
            pass  # the shared config is left alone (several layers share it)


def _fix_timm_attention(model: nn.Module, pruner: Any) -> None:
    """prune_timm_models.py: num_heads from the pruner, head_dim from qkv's width."""
    for m in model.modules():
        if hasattr(m, "num_heads") and isinstance(getattr(m, "qkv", None), nn.Linear):
            m.num_heads = pruner.num_heads.get(m.qkv, m.num_heads)
            if hasattr(m, "head_dim"):
                m.head_dim = m.qkv.out_features // (3 * m.num_heads)
                if isinstance(getattr(m, "attn_dim", None), int):  # timm >= 1.0.2x reshapes to it
                    m.attn_dim = m.num_heads * m.head_dim


def _fix_torchvision_vit(model: nn.Module, pruner: Any) -> None:
    """torchvision_pruning.py: VisionTransformer forwards with its ``hidden_dim`` attribute."""
    if hasattr(model, "hidden_dim") and hasattr(model, "conv_proj"):
        model.hidden_dim = model.conv_proj.out_channels


def tp_settings(entry: Entry, model: nn.Module) -> TPSettings:
    """Torch-Pruning settings for one model, following its documented examples."""
    s = TPSettings()
    if entry.family == "torchvision":
        s.ignored_layers = _classifiers(model)
        if type(model).__name__ == "VisionTransformer":
            heads = model.encoder.layers[0].num_heads
            s.round_to = 8 * heads // math.gcd(8, heads)  # MHA needs widths divisible by heads
            s.post_fix = _fix_torchvision_vit
            s.notes.append(f"round_to=lcm(8, num_heads)={s.round_to} (TP's example: num_heads)")
        return s
    if entry.family == "timm":
        s.ignored_layers = _classifiers(model)
        for m in model.modules():
            if hasattr(m, "num_heads"):
                if isinstance(getattr(m, "qkv", None), nn.Linear):
                    s.num_heads[m.qkv] = int(m.num_heads)
                elif isinstance(getattr(m, "qkv_proj", None), nn.Linear):
                    s.num_heads[m.qkv_proj] = int(m.num_heads)
        s.post_fix = _fix_timm_attention
        return s
    # hf: prune whole heads and MLP units (prune_hf_bert.py / prune_llm.py)
    attn = _hf_attention_modules(model)
    for m, q, k, v in attn:
        hs = _head_size(m, q)
        object.__setattr__(m, "_zoo_head_size", hs)
        s.num_heads[q] = q.out_features // hs
        s.num_heads[k] = k.out_features // hs
        s.num_heads[v] = v.out_features // hs
    s.prune_num_heads = True
    s.prune_head_dims = False
    s.post_fix = _fix_hf_attention
    ignored: list[nn.Module] = []
    if entry.name == "bert_cls":
        ignored.append(model.classifier)
    elif entry.name in ("bert", "vit") and getattr(model, "pooler", None) is not None:
        ignored.append(model.pooler)  # as in prune_hf_bert.py (its output is a model output)
    # The residual width is the models' output width: keep it so the output shape is kept
    # (what leandl does), by ignoring the layers that write the residual stream's first value.
    emb = _first(model, ("embeddings", "wte", "embed_tokens", "shared"))
    if entry.name in ("bert", "bert_cls", "vit"):
        base = model.bert if entry.name == "bert_cls" else model
        ignored.append(base.embeddings)
    elif entry.name == "distilbert":
        ignored.append(model.embeddings)
    elif entry.name == "gpt2":
        ignored += [model.wte, model.wpe]
    elif entry.name == "llama_gqa":
        ignored += [model.embed_tokens, model.norm]
    elif entry.name == "t5_encoder":
        ignored += [model.shared, model.encoder.final_layer_norm]
    elif entry.name == "whisper_encoder":
        ignored += [model.conv1, model.conv2, model.embed_positions, model.layer_norm]
    elif emb is not None:
        ignored.append(emb)
    s.ignored_layers = ignored
    s.round_to = 8
    if not attn:
        s.notes.append("no separate q/k/v Linear layers found (e.g. GPT-2's fused Conv1D c_attn)")
    return s
