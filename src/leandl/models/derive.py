"""Build specs for models leandl did not build, checked by rebuilding them.

:func:`derive_spec` works out how to rebuild a model that carries no spec (one made by
``transformers``, ``timm.create_model``, a torchvision builder or a user class), and
:func:`check_spec` checks a spec a user passes. Both rebuild the model from the spec (on the
``meta`` device when the model's code allows, so no memory or time is spent on weights), replay
its structural edits, and compare the result with the model: module types, tensor shapes, and
for guessed specs every plain attribute (dropout rates, pooling types, flags), so a guess that
would rebuild a different model is never recorded.

Sources tried, in order:

1. a Hugging Face ``PreTrainedModel`` shipped by ``transformers``: ``"hf:ClassName"`` and its
   config (see :mod:`leandl.models.hf`);
2. a timm model (``model.pretrained_cfg["architecture"]``): ``"timm:ARCH"`` with its
   ``num_classes``, ``in_chans`` and, for patch-embedding models, ``img_size``;
3. a torchvision model: each torchvision builder of the model's module, with its
   ``num_classes`` (and ``aux_logits`` / ``transform_input`` where the class has them);
4. a class importable by its module and name and constructible without arguments:
   ``"package.module:ClassName"`` (user code: such a checkpoint loads only with ``trust=True``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from leandl.errors import ModelError

__all__ = ["derive_spec", "check_spec", "fingerprint_diff"]

_IGNORED_ATTRS = frozenset({"training", "grad_checkpointing", "gradient_checkpointing", "name_or_path"})
_SCALARS = (bool, int, float, str, type(None))


def _fingerprint(model: nn.Module, level: str) -> dict[str, Any]:
    """What must match between a model and its rebuild, at ``level``.

    ``"shapes"``: state-dict names and shapes; ``"modules"``: also every module's type;
    ``"full"``: also every module's plain attributes (rates, flags, pooling names ...).
    """
    fp: dict[str, Any] = {}
    if level != "shapes":
        for name, mod in model.named_modules():
            fp[f"module '{name}'"] = f"{type(mod).__module__}.{type(mod).__qualname__}"
            if level != "full":
                continue
            for key, value in vars(mod).items():
                if key.startswith("_") or key in _IGNORED_ATTRS:
                    continue
                if isinstance(value, _SCALARS) or (isinstance(value, tuple | list) and len(value) <= 32
                                                   and all(isinstance(v, _SCALARS) for v in value)):
                    fp[f"attribute '{name}.{key}'" if name else f"attribute '{key}'"] = repr(value)
    for key, tensor in model.state_dict().items():
        if isinstance(tensor, torch.Tensor):
            fp[f"tensor '{key}'"] = tuple(tensor.shape)
    return fp


def fingerprint_diff(model: nn.Module, rebuilt: nn.Module, level: str = "full") -> str | None:
    """The first difference between ``model`` and ``rebuilt``, or ``None`` when they match.

    Args:
        model: the original model.
        rebuilt: a model rebuilt from a spec (possibly on the meta device).
        level: ``"shapes"`` (state-dict names and shapes), ``"modules"`` (also module types)
            or ``"full"`` (also every module's plain attributes: ints, floats, strings, flags).

    Returns:
        A readable line such as ``"tensor 'fc.weight': (10, 512) in the model vs (1000, 512)
        rebuilt"``.
    """
    a, b = _fingerprint(model, level), _fingerprint(rebuilt, level)
    for key in a:
        if key not in b:
            return f"{key} is missing from the rebuilt model"
        if a[key] != b[key]:
            return f"{key}: {a[key]} in the model vs {b[key]} rebuilt"
    for key in b:
        if key not in a:
            return f"the rebuilt model has an extra {key}"
    return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings and an untouched global RNG while candidate models are built."""
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        yield


def _rebuild(spec: dict[str, Any], edits: list[dict[str, Any]], meta: bool) -> nn.Module:
    from leandl.models.factory import create_model
    from leandl.spec import replay_edits

    with _quiet(), (torch.device("meta") if meta else contextlib.nullcontext()):
        model = create_model(spec["name"], **spec.get("kwargs", {}))  # never downloads to check
        return replay_edits(model, edits)


def _compare(model: nn.Module, spec: dict[str, Any], edits: list[dict[str, Any]], level: str,
             cpu_fallback: bool = True) -> str | None:
    """``None`` when ``spec`` + ``edits`` rebuild ``model``, else the reason they do not.

    Raises:
        Exception: whatever building from ``spec`` raised on the CPU.
    """
    from leandl.models.safety import UntrustedSpecError

    try:
        rebuilt = _rebuild(spec, edits, meta=True)
    except UntrustedSpecError:
        raise
    except Exception:  # model code that needs real tensors at build time: build on the CPU
        if not cpu_fallback:
            return None
        rebuilt = _rebuild(spec, edits, meta=False)
    return fingerprint_diff(model, rebuilt, level)


def check_spec(model: nn.Module, spec: dict[str, Any], edits: list[dict[str, Any]] | None = None) -> None:
    """Check that ``spec`` (plus ``edits``) rebuilds a model shaped like ``model``.

    Differences in plain attributes are warned about (the user vouches for the spec);
    different modules or tensor shapes would make the checkpoint unloadable and raise.

    Args:
        model: the model about to be saved.
        spec: ``{"name": ..., "kwargs": {...}}`` given by the user.
        edits: the model's structural edits, replayed on the rebuild.

    Raises:
        ModelError: the spec fails to build, or builds a model with other modules or shapes.
    """
    from leandl.models.safety import UntrustedSpecError

    edits = edits or []
    try:
        diff = _compare(model, spec, edits, level="modules")
    except UntrustedSpecError:
        return  # building it would download or read files; loading it will need trust=True
    except Exception as err:
        raise ModelError(f"spec '{spec['name']}' does not build ({type(err).__name__}: {err})",
                         fix="pass the name and kwargs that built this model") from err
    if diff is not None:
        raise ModelError(f"spec '{spec['name']}' builds a different model ({diff})",
                         fix="pass the name and kwargs that built this model")
    diff = _compare(model, spec, edits, level="full")
    if diff is not None:
        warnings.warn(f"spec '{spec['name']}' rebuilds a model that differs from the saved one: {diff}",
                      stacklevel=3)


def _first_conv(model: nn.Module) -> nn.Module | None:
    return next((m for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)), None)


def _timm_candidates(model: nn.Module) -> list[dict[str, Any]]:
    cfg = getattr(model, "pretrained_cfg", None)
    if not (type(model).__module__.startswith("timm.") and isinstance(cfg, dict)
            and isinstance(cfg.get("architecture"), str)):
        return []
    base: dict[str, Any] = {}
    if isinstance(getattr(model, "num_classes", None), int):
        base["num_classes"] = model.num_classes
    conv = _first_conv(model)
    if conv is not None and conv.in_channels != 3:
        base["in_chans"] = conv.in_channels
    kwargs = [base]
    img = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if isinstance(img, tuple | list) and img:
        kwargs.append({**base, "img_size": [int(v) for v in img]})
    return [{"name": f"timm:{cfg['architecture']}", "kwargs": k} for k in kwargs]


def _torchvision_candidates(model: nn.Module) -> list[dict[str, Any]]:
    module = type(model).__module__
    tv = sys.modules.get("torchvision.models")
    if tv is None or not module.startswith("torchvision.models."):
        return []
    kwargs: dict[str, Any] = {}
    num = getattr(model, "num_classes", None)
    if not isinstance(num, int):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        num = linears[-1].out_features if linears else None
    if isinstance(num, int):
        kwargs["num_classes"] = num
    for key in ("aux_logits", "transform_input"):
        if isinstance(getattr(model, key, None), bool):
            kwargs[key] = getattr(model, key)
    out = []
    for arch in tv.list_models():
        builder = tv.get_model_builder(arch)
        if builder.__module__ == module:
            params = inspect.signature(builder).parameters
            accepted = {k: v for k, v in kwargs.items() if k in params or any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())}
            out.append({"name": f"torchvision:{arch}", "kwargs": accepted})
    return out


def _class_candidates(model: nn.Module) -> tuple[list[dict[str, Any]], str | None]:
    """A ``module:Class`` spec for a class constructible with no arguments, or why not."""
    cls = type(model)
    where = f"{cls.__module__}.{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return [], f"{where} is defined in a script or a function, so a loader cannot import it"
    try:
        obj: Any = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return [], f"{where} cannot be imported by its name"
    if obj is not cls:
        return [], f"{where} is not the class found under that name"
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return [], f"{where} has no inspectable signature"
    required = [p.name for p in params if p.default is inspect.Parameter.empty
                and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                               inspect.Parameter.KEYWORD_ONLY)]
    if required:
        return [], f"{where} needs constructor arguments ({', '.join(required)})"
    return [{"name": f"{cls.__module__}:{cls.__qualname__}", "kwargs": {}}], None


def _likeliest_first(model: nn.Module, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates ordered by how many state-dict names their unedited build shares with ``model``.

    Structural edits such as pruning change shapes but not names, so the right architecture
    ranks first and usually is the only one rebuilt for real; when none fits, the closest
    one's difference is reported first.
    """
    names = set(model.state_dict())
    scores = []
    for candidate in candidates:
        try:
            built = set(_rebuild(candidate, [], meta=True).state_dict())
        except Exception:  # unknown until built for real
            built = set()
        scores.append(len(names & built) / max(1, len(names | built)))
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    return [candidates[i] for i in order]


def derive_spec(model: nn.Module) -> dict[str, Any]:
    """A build spec for ``model``: the recorded one, else one worked out and checked.

    Args:
        model: any module; its structural edits (``leandl.spec.get_edits``) are replayed on
            each candidate before comparing.

    Returns:
        ``{"name": ..., "kwargs": {...}}``; names of the ``module:Class`` form load only with
        ``trust=True``.

    Raises:
        ModelError: no source rebuilds the model; the message says why each failed and what
            to pass instead.

    Example:
        >>> import timm
        >>> derive_spec(timm.create_model("resnet18", num_classes=10))
        {'name': 'timm:resnet18', 'kwargs': {'num_classes': 10}}
    """
    from leandl.models.hf import hf_spec
    from leandl.models.safety import UntrustedSpecError
    from leandl.spec import get_edits, get_spec

    spec = get_spec(model)
    if spec is not None:
        return spec
    edits = get_edits(model)
    hf = hf_spec(model)
    if hf is not None:
        # shapes only: module classes may follow the attention kernel, which is not recorded
        try:
            diff = _compare(model, hf, edits, level="shapes", cpu_fallback=bool(edits))
        except UntrustedSpecError:  # e.g. a backbone named by hub id: loading will need trust
            return hf
        if diff is not None:
            raise ModelError(f"its transformers config rebuilds a different model ({diff})",
                             where=type(model).__name__,
                             fix="update model.config to match the changed layers, or pass spec={...}")
        return hf
    reasons = []
    candidates = _timm_candidates(model) + _torchvision_candidates(model)
    class_candidates, why_not = _class_candidates(model)
    if why_not and not candidates:
        reasons.append(why_not)
    candidates += class_candidates
    if len(candidates) > 1:  # edits may need a real (CPU) build, and the closest miss explains best
        candidates = _likeliest_first(model, candidates)
    for candidate in candidates:
        try:
            diff = _compare(model, candidate, edits, level="full")
        except Exception as err:
            diff = f"{type(err).__name__}: {err}"
        if diff is None:
            return candidate
        reasons.append(f"'{candidate['name']}' with {candidate['kwargs']}: {diff}")
    if not reasons:
        reasons.append(f"{type(model).__module__}.{type(model).__qualname__} is not a library model")
    shown = "; ".join(reasons[:3]) + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else "")
    raise ModelError(f"cannot work out how to rebuild this model: {shown}", where=type(model).__name__)
