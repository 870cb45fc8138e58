"""Build models by name: leandl's registry, ``pkg.module:function`` paths, torchvision, timm, HF.

Names, in the order they are tried:

- ``"torchvision:NAME"``: ``torchvision.models.get_model(NAME, weights=None, num_classes=...)``.
- ``"timm:NAME"``: ``timm.create_model(NAME, pretrained=False, num_classes=..., in_chans=...)``.
- ``"hf:ClassName"``: a ``transformers`` model class built from ``config={...}`` with random
  weights (see :mod:`leandl.models.hf`).
- ``"package.module:function"``: imports the module (user code) and calls ``function(**kwargs)``.
- anything else: a ``MODELS`` registry name (``leandl models`` lists them).

The library adapters never download, read files or run remote code unless the caller passes
``trust=True``: pretrained weights (``weights=``, ``pretrained=True``, ``checkpoint_path=``),
hub names and path- or URL-like strings are refused otherwise (:func:`leandl.models.spec_risks`).

Every model gets its build spec recorded (:func:`leandl.spec.set_spec`), so a checkpoint can
rebuild it; kwargs must therefore be JSON values (tuples are stored as lists). A trusted build
with pretrained weights records the weight-free spec of the same architecture when one rebuilds
it exactly (a checkpoint carries the weights), so its checkpoints load without ``trust``.

Example:
    >>> from leandl.models import create_model
    >>> model = create_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import json
from collections.abc import Callable
from typing import Any

from torch import nn

from leandl.errors import ModelError, UsageError
from leandl.registry import MODELS
from leandl.spec import set_spec

__all__ = ["create_model", "list_models", "is_registry_name", "default_input_shape"]

_ADAPTERS = ("torchvision", "timm", "hf")
# Keys the recipe runner fills from the data set; dropped for user factories that lack them.
_DATA_KEYS = ("num_classes", "input_shape")


def create_model(name: str, *, trust: bool = False, **kwargs: Any) -> nn.Module:
    """Build a model and record its spec on it.

    Args:
        name: a registry name (``"resnet20"``), ``"torchvision:NAME"``, ``"timm:NAME"``,
            ``"hf:ClassName"`` or an import path ``"package.module:function"``.
        trust: let library adapters download or read what the kwargs name (pretrained
            ``weights``, ``pretrained=True``, ``checkpoint_path``, hub names, remote code).
        **kwargs: passed to the factory; registry factories take ``num_classes`` and
            ``input_shape`` (one sample, no batch) plus their own options; ``hf:`` names take
            ``config={...}``.

    Returns:
        The model, with ``leandl.spec.get_spec(model) == {"name": name, "kwargs": kwargs}``
        (for a trusted pretrained build: the weight-free spec of the same architecture).

    Raises:
        UsageError: unknown registry name (with the closest match) or malformed import path.
        ModelError: the factory failed, a package is missing, kwargs are not JSON values, or
            a library kwarg would download or read files without ``trust=True``.
    """
    spec_kwargs = _jsonable(name, kwargs)
    prefix, _, rest = name.partition(":")
    if rest and prefix in _ADAPTERS:
        from leandl.models.safety import UntrustedSpecError, spec_risks

        risks = spec_risks(name, spec_kwargs)
        if risks and not trust:
            raise UntrustedSpecError(
                f"model '{name}': {risks[0]}" + (f" (and {len(risks) - 1} more)" if len(risks) > 1 else ""),
                fix="leandl only builds architectures from library names by default; pass trust=True "
                "if you mean to download or read what it names",
            )
        model = _ADAPTER_FUNCS[prefix](rest, dict(kwargs), trust)
        if trust and (risks or (prefix == "hf" and _hf_built_risks(model))):
            spec_kwargs = _weight_free_kwargs(name, spec_kwargs, model)
    elif rest:
        model = _call_factory(name, _import_factory(name), kwargs, drop_data_keys=True)
    else:
        model = _call_factory(name, MODELS.get(name), kwargs, drop_data_keys=False)
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"model factory '{name}' returned {type(model).__name__}, not a torch.nn.Module",
            fix="make the factory return the model",
        )
    set_spec(model, name, spec_kwargs)
    return model


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registry names, filtered by an ``fnmatch`` pattern such as ``"resnet*"``."""
    names = MODELS.names()
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names


def is_registry_name(name: str) -> bool:
    """True when ``name`` resolves without importing user code.

    Registry names and the ``torchvision:``/``timm:``/``hf:`` adapters qualify; ``pkg.mod:fn``
    import paths do not (a checkpoint naming one loads only when the caller trusts it). An
    adapter spec must still pass :func:`leandl.models.spec_risks` to load untrusted.
    """
    prefix, _, rest = name.partition(":")
    if rest:
        return prefix in _ADAPTERS
    return name in MODELS


def default_input_shape(name: str) -> tuple[int, ...]:
    """The default ``input_shape`` of a registry model (one sample, no batch)."""
    param = inspect.signature(MODELS.get(name)).parameters.get("input_shape")
    if param is None or param.default is inspect.Parameter.empty:
        raise ModelError(f"model '{name}' has no default input_shape", fix="pass input_shape")
    return tuple(param.default)


def _jsonable(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """kwargs with tuples turned into lists; refuses values JSON cannot store."""
    try:
        return json.loads(json.dumps(kwargs))
    except (TypeError, ValueError) as err:
        raise ModelError(
            f"model '{name}': keyword arguments must be JSON values (numbers, strings, lists, "
            f"dicts) so the model can be rebuilt from a checkpoint; {err}",
            fix="pass plain values, or wrap the model in a factory function taking plain values",
        ) from None


def _import_factory(name: str) -> Callable[..., Any]:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise UsageError(
            f"model '{name}' is not a valid import path",
            fix="write it as 'package.module:function'",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelError(
            f"model '{name}': cannot import module '{module_name}' ({err})",
            fix="check the spelling and that the module is on PYTHONPATH",
        ) from err
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(
                f"model '{name}': module '{module_name}' has no attribute '{attr}'",
                fix="name a function or class defined in that module",
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"model '{name}': '{attr}' is not callable", fix="name a function")
    return obj


def _call_factory(
    name: str, fn: Callable[..., Any], kwargs: dict[str, Any], drop_data_keys: bool
) -> Any:
    kwargs = dict(kwargs)
    if drop_data_keys:
        params = _parameters(fn)
        if params is not None:
            for key in _DATA_KEYS:
                if key not in params:
                    kwargs.pop(key, None)
    try:
        return fn(**kwargs)
    except TypeError as err:
        if "argument" not in str(err):
            raise
        raise ModelError(
            f"model '{name}' rejected its keyword arguments: {err}",
            fix=f"accepted: {', '.join(_parameters(fn) or ['(see its docstring)'])}",
        ) from err


def _parameters(fn: Callable[..., Any]) -> list[str] | None:
    """Keyword names ``fn`` accepts, or ``None`` when it takes ``**kwargs`` or has no signature."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]


def _import_adapter(package: str) -> Any:
    """Import ``torchvision``, ``timm`` or ``transformers`` (the latter two import torchvision)."""
    try:
        torchvision = _import_torchvision()
        if package == "torchvision":
            if torchvision is None:
                raise ImportError("torchvision")
            return torchvision
        return importlib.import_module(package)
    except ImportError:
        raise ModelError(
            f"model names '{'hf' if package == 'transformers' else package}:...' need the '{package}' "
            "package, which is not installed",
            fix=f"install it with `pip install {package}` (or `pip install leandl[vision]`) in an "
            "environment where it matches the installed torch",
        ) from None


def _import_torchvision() -> Any:
    """torchvision, through leandl's import shim when there is one; ``None`` if not installed."""
    try:
        from leandl._compat_torchvision import import_torchvision  # type: ignore[import-not-found]
    except ImportError:
        import_torchvision = None
    try:
        if import_torchvision is not None:
            return import_torchvision()
        return importlib.import_module("torchvision")
    except ImportError:
        return None


def _torchvision_model(arch: str, kwargs: dict[str, Any], trust: bool) -> nn.Module:
    tv = _import_adapter("torchvision")
    shape = kwargs.pop("input_shape", None)
    if shape is not None and (len(shape) != 3 or int(shape[0]) != 3):
        raise ModelError(
            f"model 'torchvision:{arch}' takes 3-channel images (3, H, W), got input_shape "
            f"{tuple(shape)}",
            fix="use a timm model (it adapts in_chans) or a leandl model for this data",
        )
    try:
        builder = tv.models.get_model_builder(arch)
    except ValueError as err:
        raise UsageError(f"unknown torchvision model '{arch}' ({err})",
                         fix="see torchvision.models.list_models()") from err
    params = inspect.signature(builder).parameters
    kwargs.setdefault("weights", None)  # never download unless asked (and trusted)
    if "weights_backbone" in params:  # detection/segmentation builders default to a download
        kwargs.setdefault("weights_backbone", None)
    if kwargs["weights"] is None:
        kwargs.setdefault("num_classes", 10)
        if arch in ("googlenet", "inception_v3"):
            kwargs.setdefault("init_weights", True)  # today's default, without its FutureWarning
    try:
        return builder(**kwargs)
    except (TypeError, ValueError) as err:  # unknown keyword; kwargs that contradict the weights
        if isinstance(err, TypeError) and "argument" not in str(err):
            raise
        raise ModelError(f"model 'torchvision:{arch}' rejected its keyword arguments: {err}",
                         fix="see the builder's documentation in torchvision.models") from err


def _timm_model(arch: str, kwargs: dict[str, Any], trust: bool) -> nn.Module:
    timm = _import_adapter("timm")
    shape = kwargs.pop("input_shape", None)
    if shape is not None:
        kwargs.setdefault("in_chans", int(shape[0]))
    kwargs.setdefault("num_classes", 10)
    kwargs.setdefault("pretrained", False)  # never download unless asked (and trusted)
    try:
        return timm.create_model(arch, **kwargs)
    except RuntimeError as err:
        raise UsageError(f"unknown timm model '{arch}' ({err})",
                         fix="see timm.list_models()") from err


def _hf_model(arch: str, kwargs: dict[str, Any], trust: bool) -> nn.Module:
    from leandl.models.hf import hf_model

    return hf_model(arch, kwargs, trust=trust)


def _hf_built_risks(model: nn.Module) -> bool:
    """True when a transformers model's config, defaults filled in, asks for downloads."""
    from leandl.models.hf import _strip
    from leandl.models.safety import hf_config_risks

    config = getattr(model, "config", None)
    return config is not None and bool(hf_config_risks(_strip(config.to_dict())))


# Keyword arguments that only say where weights come from, per adapter.
_WEIGHT_KEYS = {
    "torchvision": ("weights", "weights_backbone", "progress"),
    "timm": ("pretrained", "checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "pretrained_strict",
             "cache_dir"),
}


def _weight_free_kwargs(name: str, kwargs: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Spec kwargs without the weight source, when they rebuild ``model`` exactly; else ``kwargs``.

    A checkpoint stores the weights, so recording where they were downloaded from would only
    make loading it need ``trust=True`` (and the network) for nothing.
    """
    from leandl.models.derive import _compare
    from leandl.models.safety import spec_risks

    prefix = name.partition(":")[0]
    if prefix == "hf":
        from leandl.models.hf import hf_spec

        free = hf_spec(model)["kwargs"]  # the built config, defaults filled in, backbone weights off
    else:
        free = {k: v for k, v in kwargs.items() if k not in _WEIGHT_KEYS[prefix]}
        # Pretrained torchvision weights fix the head size and input transform; read them back.
        if isinstance(getattr(model, "num_classes", None), int):
            free["num_classes"] = model.num_classes
        elif prefix == "torchvision":
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            if linears:
                free["num_classes"] = linears[-1].out_features
        if prefix == "torchvision":
            for key in ("aux_logits", "transform_input"):
                if isinstance(getattr(model, key, None), bool):
                    free[key] = getattr(model, key)
    if spec_risks(name, free):
        return kwargs
    try:
        level = "shapes" if prefix == "hf" else "full"
        same = _compare(model, {"name": name, "kwargs": free}, [], level=level) is None
    except Exception:  # noqa: BLE001 - a weight-free build that fails keeps the original spec
        same = False
    return free if same else kwargs


_ADAPTER_FUNCS: dict[str, Callable[[str, dict[str, Any], bool], nn.Module]] = {
    "torchvision": _torchvision_model,
    "timm": _timm_model,
    "hf": _hf_model,
}
