"""Hugging Face ``transformers`` models by class name and config, without the hub.

A spec ``{"name": "hf:ClassName", "kwargs": {"config": {...}}}`` rebuilds a model as
``cls(cls.config_class.from_dict(config))``: random weights, no download, no remote code, no
files read. ``ClassName`` is a class exported by ``transformers`` (``"hf:BertModel"``,
``"hf:LlamaForCausalLM"``) or, for classes only found in a model's module, a dotted path under
``transformers.models`` (``"hf:whisper.modeling_whisper.WhisperEncoder"``); either way it must be
a subclass of ``transformers.PreTrainedModel``, so a spec cannot name any other code.

``config`` is the model config's ``to_dict()`` minus bookkeeping (``_name_or_path``,
``transformers_version``, ``_commit_hash``) and ``auto_map`` (the class is transformers' own);
the optional ``attn_implementation`` kwarg (``"eager"``, ``"sdpa"``) selects the attention
kernel. Configs that ask for remote code or hub access (``auto_map``, ``trust_remote_code``,
``use_pretrained_backbone``, backbone checkpoint names, paths and URLs), given or filled in by
the config class's defaults, are refused unless trusted (:mod:`leandl.models.safety`).

Example:
    >>> import leandl
    >>> bert = leandl.create_model("hf:BertModel", config={
    ...     "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    ...     "intermediate_size": 64, "vocab_size": 100})
    >>> from leandl.models import from_hf
    >>> model = from_hf(some_pretrained_model)  # records "hf:<its class>" and its config
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from typing import Any

from torch import nn

from leandl.errors import ModelError, UsageError

__all__ = ["hf_model", "hf_spec", "from_hf", "config_dict", "is_hf_model"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Bookkeeping a config carries that says nothing about the architecture.
_DROP = frozenset({"_name_or_path", "name_or_path", "transformers_version", "_commit_hash",
                   "_attn_implementation_internal", "_attn_implementation_autoset",
                   "_attn_implementation"})
_KWARGS = ("config", "attn_implementation", "num_classes", "input_shape")


def _transformers() -> Any:
    from leandl.models.factory import _import_adapter

    return _import_adapter("transformers")


def _resolve(name: str) -> type:
    """The ``PreTrainedModel`` subclass named by ``name`` (``Class`` or ``pkg.module.Class``)."""
    transformers = _transformers()
    parts = name.split(".")
    if not all(_IDENT.match(p) for p in parts):
        raise UsageError(f"'hf:{name}' is not a transformers class name",
                         fix="write 'hf:ClassName', e.g. 'hf:BertModel'")
    try:
        if len(parts) == 1:
            obj = getattr(transformers, name)
        else:
            module = importlib.import_module("transformers.models." + ".".join(parts[:-1]))
            obj = getattr(module, parts[-1])
    except (AttributeError, ImportError) as err:
        if len(parts) == 1 and "Could not import module" in str(err):  # transformers' lazy import
            raise ModelError(f"transformers ships '{name}' but cannot import it here ({err})",
                             fix="check that transformers' dependencies (torch, torchvision) match; "
                             "import it yourself to see the full error") from None
        raise UsageError(
            f"unknown transformers model class 'hf:{name}' ({type(err).__name__}: {err})",
            fix="use a class exported by transformers (e.g. 'hf:BertModel') or a path under "
            "transformers.models such as 'hf:whisper.modeling_whisper.WhisperEncoder'",
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, transformers.PreTrainedModel)):
        raise UsageError(f"'hf:{name}' is not a transformers model class (a PreTrainedModel subclass)",
                         fix="name a model class such as 'hf:BertModel', not a config, tokenizer or function")
    return obj


def hf_model(name: str, kwargs: dict[str, Any], trust: bool = False) -> nn.Module:
    """Build ``transformers`` model ``name`` from a config dict, with random weights.

    Args:
        name: the class name after ``hf:``.
        kwargs: ``config`` (dict, the config's fields; defaults of the config class otherwise),
            optional ``attn_implementation`` (``"eager"``, ``"sdpa"`` ...), and the recipe
            runner's ``num_classes`` (fills ``num_labels`` when the config gives no labels) and
            ``input_shape`` (ignored).
        trust: build even when the config, with its class defaults filled in, would download
            weights or fetch a backbone checkpoint.

    Returns:
        ``cls(config)``, in training mode as ``nn.Module`` builds it.

    Raises:
        UsageError: unknown or non-model class name, unknown keyword.
        ModelError: ``transformers`` missing, or the config cannot build the model.
    """
    cls = _resolve(name)
    unknown = sorted(set(kwargs) - set(_KWARGS))
    if unknown:
        raise UsageError(f"model 'hf:{name}' takes no keyword {unknown[0]!r}",
                         fix="pass the architecture as config={...}; keywords: " + ", ".join(_KWARGS))
    config = kwargs.get("config") or {}
    if not isinstance(config, dict):
        raise UsageError(f"model 'hf:{name}': config must be a dict, got {type(config).__name__}",
                         fix="pass config=model.config.to_dict() or a dict of its fields")
    config = _strip(config)
    if kwargs.get("num_classes") is not None and "id2label" not in config and "num_labels" not in config:
        config["num_labels"] = int(kwargs["num_classes"])
    try:
        extra = {"attn_implementation": kwargs["attn_implementation"]} if kwargs.get("attn_implementation") else {}
        cfg = cls.config_class.from_dict(config, **extra)
    except (TypeError, ValueError, KeyError, AttributeError, ImportError) as err:
        raise ModelError(f"model 'hf:{name}': its config is invalid ({type(err).__name__}: {err})",
                         fix="check the config's fields against " + cls.config_class.__name__) from err
    if not trust:
        from leandl.models.safety import UntrustedSpecError, hf_config_risks

        risks = hf_config_risks(_strip(cfg.to_dict()))
        if risks:
            raise UntrustedSpecError(
                f"model 'hf:{name}': {risks[0]} (with {cls.config_class.__name__}'s defaults filled in)",
                fix="set that field in config={...} (e.g. use_pretrained_backbone=False), or pass "
                "trust=True if you mean to download it",
            )
    try:
        return cls(cfg)
    except (TypeError, ValueError, KeyError, AttributeError, ImportError) as err:
        raise ModelError(f"model 'hf:{name}' cannot be built from its config ({type(err).__name__}: {err})",
                         fix="check the config's fields against " + cls.config_class.__name__) from err


def _strip(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without bookkeeping keys, at every depth (sub-configs carry them too)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in _DROP:
            continue
        out[key] = _strip(value) if isinstance(value, dict) else value
    return out


def is_hf_model(model: nn.Module) -> bool:
    """True for a ``transformers.PreTrainedModel`` (checked without importing transformers)."""
    transformers = sys.modules.get("transformers")
    base = getattr(transformers, "PreTrainedModel", None) if transformers is not None else None
    return base is not None and isinstance(model, base)


def config_dict(config: Any) -> dict[str, Any]:
    """A config's fields as JSON values: ``to_dict()`` minus bookkeeping, ``auto_map`` and private
    non-JSON entries.

    Raises:
        ModelError: a field that matters (no leading underscore) is not a JSON value.
    """
    raw = {k: v for k, v in _strip(config.to_dict()).items() if k != "auto_map"}  # built-in class
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(json.dumps(value))
        except (TypeError, ValueError) as err:
            if key.startswith("_"):
                continue  # private runtime state, not architecture
            raise ModelError(
                f"config field '{key}' of {type(config).__name__} is not a JSON value ({err})",
                fix="set it to a plain value, or save with spec={...} naming a factory",
            ) from None
    return out


def _class_name(cls: type) -> str | None:
    """The ``hf:`` name of ``cls``, or ``None`` when transformers does not ship it."""
    transformers = sys.modules.get("transformers")
    if transformers is None:
        return None
    if getattr(transformers, cls.__name__, None) is cls:
        return cls.__name__
    prefix = "transformers.models."
    if cls.__module__.startswith(prefix):
        module = importlib.import_module(cls.__module__)
        if getattr(module, cls.__name__, None) is cls:
            return f"{cls.__module__[len(prefix):]}.{cls.__name__}"
    return None


def hf_spec(model: nn.Module) -> dict[str, Any] | None:
    """The ``hf:`` spec of a transformers model, or ``None`` for any other module.

    Raises:
        ModelError: the model is a transformers model whose class transformers does not ship
            (remote code) or whose config holds non-JSON values.
    """
    if not is_hf_model(model):
        return None
    name = _class_name(type(model))
    if name is None:
        raise ModelError(
            f"{type(model).__name__} is not a class shipped by transformers (remote code?), so it "
            "cannot be rebuilt from its name",
            fix="save with spec={'name': 'pkg.module:factory', 'kwargs': {...}} and load with trust=True",
        )
    config = config_dict(model.config)
    _no_pretrained_backbone(config)  # the checkpoint holds the weights
    kwargs: dict[str, Any] = {"config": config}
    attn = getattr(model.config, "_attn_implementation_internal", None)
    if attn is None:
        attn = getattr(model.config, "_attn_implementation", None)
    if attn == "eager":  # the portable non-default choice; others are picked again at load
        kwargs["attn_implementation"] = "eager"
    return {"name": f"hf:{name}", "kwargs": kwargs}


def _no_pretrained_backbone(config: dict[str, Any]) -> None:
    """Turn ``use_pretrained_backbone`` off at every depth of a config dict (in place)."""
    for key, value in config.items():
        if key == "use_pretrained_backbone" and value:
            config[key] = False
        elif isinstance(value, dict):
            _no_pretrained_backbone(value)


def from_hf(model: nn.Module) -> nn.Module:
    """Record the ``hf:`` build spec of a transformers model on it and return it.

    After this, pruning edits are logged against the spec and :func:`leandl.save` writes the
    model without further arguments. (``leandl.save`` also does this by itself for a model that
    carries no spec.)

    Args:
        model: an instance of a model class shipped by ``transformers``, built from a config
            or ``from_pretrained`` (its weights come from the checkpoint, never the hub).

    Returns:
        ``model`` itself, with its spec recorded.

    Raises:
        ModelError: not a transformers model, or a class transformers does not ship.
    """
    from leandl.spec import set_spec

    spec = hf_spec(model)
    if spec is None:
        raise ModelError(f"{type(model).__name__} is not a transformers PreTrainedModel",
                         fix="use leandl.models.derive_spec(model) or pass spec= to leandl.save")
    return set_spec(model, spec["name"], spec["kwargs"])
