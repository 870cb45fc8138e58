"""Build models by name: leandl's registry, ``pkg.module:function`` paths, torchvision and timm.

Names, in the order they are tried:

- ``"torchvision:NAME"``: ``torchvision.models.get_model(NAME, weights=None, num_classes=...)``.
- ``"timm:NAME"``: ``timm.create_model(NAME, pretrained=False, num_classes=..., in_chans=...)``.
- ``"package.module:function"``: imports the module (user code) and calls ``function(**kwargs)``.
- anything else: a ``MODELS`` registry name (``leandl models`` lists them).

Every model gets its build spec recorded (:func:`leandl.spec.set_spec`), so a checkpoint can
rebuild it; kwargs must therefore be JSON values (tuples are stored as lists).

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

_ADAPTERS = ("torchvision", "timm")
# Keys the recipe runner fills from the data set; dropped for user factories that lack them.
_DATA_KEYS = ("num_classes", "input_shape")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model and record its spec on it.

    Args:
        name: a registry name (``"resnet20"``), ``"torchvision:NAME"``, ``"timm:NAME"`` or an
            import path ``"package.module:function"``.
        **kwargs: passed to the factory; registry factories take ``num_classes`` and
            ``input_shape`` (one sample, no batch) plus their own options.

    Returns:
        The model, with ``leandl.spec.get_spec(model) == {"name": name, "kwargs": kwargs}``.

    Raises:
        UsageError: unknown registry name (with the closest match) or malformed import path.
        ModelError: the factory failed, a package is missing, or kwargs are not JSON values.
    """
    spec_kwargs = _jsonable(name, kwargs)
    prefix, _, rest = name.partition(":")
    if rest and prefix in _ADAPTERS:
        model = _ADAPTER_FUNCS[prefix](rest, dict(kwargs))
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

    Registry names and the ``torchvision:``/``timm:`` adapters qualify; ``pkg.mod:fn`` import
    paths do not (a checkpoint naming one loads only when the caller trusts it).
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
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ModelError(
            f"model names '{package}:...' need the '{package}' package, which is not installed",
            fix=f"install it with `pip install {package}` (or `pip install leandl[vision]`) in an "
            "environment where it matches the installed torch",
        ) from None


def _torchvision_model(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    tv = _import_adapter("torchvision")
    shape = kwargs.pop("input_shape", None)
    if shape is not None and (len(shape) != 3 or int(shape[0]) != 3):
        raise ModelError(
            f"model 'torchvision:{arch}' takes 3-channel images (3, H, W), got input_shape "
            f"{tuple(shape)}",
            fix="use a timm model (it adapts in_chans) or a leandl model for this data",
        )
    kwargs.setdefault("num_classes", 10)
    kwargs["weights"] = None  # never download at run time
    try:
        return tv.models.get_model(arch, **kwargs)
    except ValueError as err:
        raise UsageError(f"unknown torchvision model '{arch}' ({err})",
                         fix="see torchvision.models.list_models()") from err


def _timm_model(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    timm = _import_adapter("timm")
    shape = kwargs.pop("input_shape", None)
    if shape is not None:
        kwargs.setdefault("in_chans", int(shape[0]))
    kwargs.setdefault("num_classes", 10)
    kwargs["pretrained"] = False  # never download at run time
    try:
        return timm.create_model(arch, **kwargs)
    except RuntimeError as err:
        raise UsageError(f"unknown timm model '{arch}' ({err})",
                         fix="see timm.list_models()") from err


_ADAPTER_FUNCS: dict[str, Callable[[str, dict[str, Any]], nn.Module]] = {
    "torchvision": _torchvision_model,
    "timm": _timm_model,
}
