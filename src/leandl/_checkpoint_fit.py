"""Rebuilding a checkpoint's model and fitting its weights (used by :func:`leandl.checkpoint.load`).

The model is built on the meta device when that is exact (no random init wasted; hostile
metadata cannot make it allocate more than the weights file can fill), the saved tensors are
checked against it by name, shape and dtype kind (every misfit named), and loaded with their
saved dtypes and the modules' recorded state-dict versions.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.errors import CheckpointError
from leandl.spec import replay_edits

__all__ = ["WEIGHTS", "load_weights", "build_skipping_init"]

WEIGHTS = "model.safetensors"


def load_weights(model: nn.Module, tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: Path) -> None:
    """Load ``tensors`` into ``model`` strictly, with saved dtypes and module versions.

    Raises:
        CheckpointError: the weights do not fit the model.
    """
    _check_fit(model, tensors, path)
    _match_dtypes(model, tensors, meta.get("buffer_dtypes", {}))
    state: OrderedDict[str, torch.Tensor] = OrderedDict(tensors)
    state._metadata = _restore_versions(model, meta.get("state_dict_metadata", {}))  # type: ignore[attr-defined]
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()][:4]
        raise CheckpointError(f"the weights do not fit the rebuilt model: {' '.join(lines) or type(exc).__name__}",
                              where=str(path), fix=_FIT_FIX) from exc


_FIT_FIX = ("model.safetensors and leandl.json must come from the same leandl.save call: if leandl.json's spec or "
            "edits were changed, restore them; otherwise re-save the model with leandl.save(model, path)")


def _fit_problems(model: nn.Module, tensors: dict[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and wrongly shaped tensors of ``tensors`` against ``model``'s state dict.

    Works on a meta-device model too (only names and shapes are read).
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    shapes = [f"{k} (file {list(tensors[k].shape)}, model {list(v)})" for k, v in expected.items()
              if k in tensors and tuple(tensors[k].shape) != v]
    kinds = {k: _dtype_kind(v.dtype) for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    dtypes = [f"{k} (file {str(tensors[k].dtype).replace('torch.', '')}, model "
              f"{str(v.dtype).replace('torch.', '')})" for k, v in model.state_dict().items()
              if isinstance(v, torch.Tensor) and k in tensors and _dtype_kind(tensors[k].dtype) != kinds[k]]
    problems = []
    for label, names in (("missing from the file", missing), ("not in the model", unexpected),
                         ("with a different shape", shapes), ("of another kind of dtype", dtypes)):
        if names:
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
            problems.append(f"{len(names)} tensor(s) {label}: {shown}")
    return problems


def _dtype_kind(dtype: torch.dtype) -> str:
    """``float``, ``complex``, ``bool`` or ``int``: a saved tensor may change precision, not kind."""
    if dtype.is_floating_point:
        return "float"
    if dtype.is_complex:
        return "complex"
    return "bool" if dtype == torch.bool else "int"


def _check_fit(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """A :class:`CheckpointError` naming every tensor that does not fit ``model``."""
    problems = _fit_problems(model, tensors)
    if problems:
        raise CheckpointError("the weights do not fit the model leandl.json describes; " + "; ".join(problems),
                              where=str(path), fix=_FIT_FIX)


def build_skipping_init(name: str, kwargs: dict[str, Any], edits: list[dict[str, Any]], trust: bool,
                         tensors: dict[str, torch.Tensor], file_bytes: int, path: Path) -> nn.Module | None:
    """The model built on the meta device and given uninitialised CPU storage, or ``None``.

    Random initialisation is wasted work when every tensor is about to be overwritten (it
    dominates loading time for transformers). This path is taken only when it is exact: the
    build and the edits run on ``meta``, and every parameter and buffer of the result is in
    the checkpoint (no non-persistent buffer such as rotary frequencies or position ids, no
    bare tensor attribute) so the weights overwrite all of it. Anything else returns ``None``
    and the model is built normally.

    The meta build also bounds what hostile metadata can allocate: a spec or edits describing
    a model larger than the weights file allows (``num_classes: 10**9``) is refused here, naming
    the tensors that do not fit, before any real storage exists.
    """
    import warnings

    from leandl.models import create_model

    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            model = replay_edits(create_model(name, trust=trust, **kwargs), edits)
    except Exception:  # model code that needs real values while building; real errors recur below
        return None
    _check_size(model, tensors, file_bytes, path)
    named = itertools.chain(model.named_parameters(remove_duplicate=False),
                            model.named_buffers(remove_duplicate=False))
    if any(key not in tensors for key, _ in named) or _has_bare_tensors(model):
        return None
    return _materialize(model)


_UNSAVED_SLACK = 256 << 20  # non-persistent buffers (rotary tables, position ids) beyond the saved weights


def _check_size(model: nn.Module, tensors: dict[str, torch.Tensor], file_bytes: int, path: Path) -> None:
    """Refuse a meta-device model whose storage exceeds what the weights file can fill.

    Its saved tensors must fit (names and shapes, see :func:`_check_fit`) whenever it needs more
    bytes than the file holds plus a slack for buffers the state dict leaves out.
    """
    seen: set[int] = set()
    need = 0
    for t in itertools.chain(model.parameters(), model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            need += t.numel() * t.element_size()
    if need > file_bytes + _UNSAVED_SLACK:
        _check_fit(model, tensors, path)
        raise CheckpointError(f"the model leandl.json describes needs {need} bytes, far more than the {file_bytes}"
                              f"-byte {WEIGHTS}", where=str(path), fix=_FIT_FIX)


def _materialize(model: nn.Module) -> nn.Module | None:
    """Give a meta-device model uninitialised CPU tensors, keeping shared (tied) tensors shared.

    ``nn.Module.to_empty`` makes one new parameter per owner when leaving ``meta``, which would
    untie e.g. a language model's input embedding and output projection.
    """
    owners: dict[int, tuple[torch.Tensor, list[tuple[dict[str, Any], str]]]] = {}
    for module in model.modules():
        for table in (module._parameters, module._buffers):
            for key, tensor in table.items():
                if tensor is not None:
                    owners.setdefault(id(tensor), (tensor, []))[1].append((table, key))
    for tensor, places in owners.values():
        if type(tensor) not in (nn.Parameter, torch.Tensor):  # a parameter subclass: build normally
            return None
    for tensor, places in owners.values():
        new = torch.empty_like(tensor, device="cpu")
        if isinstance(tensor, nn.Parameter):
            new = nn.Parameter(new, requires_grad=tensor.requires_grad)
        for table, key in places:
            table[key] = new
    return model


def _has_bare_tensors(model: nn.Module) -> bool:
    """True when a module keeps a tensor outside its parameters and buffers."""
    for module in model.modules():
        for value in vars(module).values():
            items = value if isinstance(value, list | tuple) else (value,)
            if any(isinstance(v, torch.Tensor) for v in items):
                return True
    return False


def _match_dtypes(model: nn.Module, tensors: dict[str, torch.Tensor], unsaved: dict[str, str]) -> None:
    """Give each floating parameter/buffer the dtype it had when saved (ties stay tied).

    Args:
        model: the rebuilt model.
        tensors: the saved state dict (its dtypes are the saved ones).
        unsaved: dtype names of buffers the state dict leaves out.
    """
    named = itertools.chain(model.named_parameters(remove_duplicate=False),
                            model.named_buffers(remove_duplicate=False))
    for name, tensor in named:
        saved = tensors.get(name)
        dtype = saved.dtype if saved is not None else getattr(torch, unsaved.get(name, ""), None)
        if (isinstance(dtype, torch.dtype) and dtype != tensor.dtype and dtype.is_floating_point
                and tensor.is_floating_point()):
            tensor.data = tensor.data.to(dtype)


def _restore_versions(model: nn.Module, recorded: dict[str, dict[str, int]]) -> OrderedDict[str, dict[str, Any]]:
    """State-dict metadata for loading: the recorded versions over the rebuilt model's own.

    Checkpoints written before versions were recorded get the rebuilt modules' current
    versions, which is what their weights were saved with by this leandl.
    """
    current = getattr(model.state_dict(), "_metadata", None) or {}
    merged: OrderedDict[str, dict[str, Any]] = OrderedDict((k, dict(v)) for k, v in current.items())
    for prefix, local in recorded.items():
        if "version" in local:
            merged.setdefault(prefix, {})["version"] = int(local["version"])
    return merged
