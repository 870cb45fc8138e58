"""Model checkpoints: safe to load, exact to rebuild.

A checkpoint is a directory written atomically::

    model.safetensors   the weights (and buffers: BN statistics, quantization scales, masks)
    leandl.json         format version, model spec (registry name, library name or import
                        path + kwargs), structural edits in order, module state-dict versions,
                        metrics, extra info, versions, sha256 of model.safetensors

Loading builds the model from its spec, replays the edits (see :mod:`leandl.spec`), then
loads the weights (restoring each tensor's dtype and the modules' state-dict versions, which
some modules check, e.g. torchvision's MNASNet). Nothing is unpickled.

Which models can be saved:

- models from :func:`leandl.create_model` (registry, ``torchvision:``, ``timm:``, ``hf:``, import
  paths), pruned or otherwise edited by leandl;
- models built elsewhere: a ``transformers`` model is recorded as ``hf:ClassName`` + config, a
  ``timm.create_model`` model as ``timm:ARCH`` + kwargs, a torchvision builder's model as
  ``torchvision:NAME`` + kwargs, an instance of an importable class constructible without
  arguments as ``"package.module:ClassName"``; each guess is checked by rebuilding the
  architecture (see :func:`leandl.models.derive_spec`);
- anything else with ``spec={"name": "package.module:function", "kwargs": {...}}``.

Safety: a spec naming code outside leandl's registry (an import path) is built only when the
caller passes ``trust=True``; so is a library spec whose kwargs could download weights, read a
file or run remote code (:func:`leandl.models.spec_risks`). A weights file whose hash differs
from the one recorded is refused.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.errors import CheckpointError
from leandl.serialization import (as_os_error, atomic_dir, check_member_file, check_safetensors, crash_point,
                                  read_json_bounded, resolve_dir)
from leandl.spec import get_edits, get_spec, replay_edits

__all__ = ["save", "load", "read_meta", "state_tensors", "FORMAT", "FORMAT_VERSION"]

FORMAT = "leandl-checkpoint"
FORMAT_VERSION = 1
_WEIGHTS = "model.safetensors"
_META = "leandl.json"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors with no shared storage."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor):
            out[key] = value.detach().cpu().contiguous().clone()
    return out


def save(
    model: nn.Module,
    path: str | Path,
    *,
    spec: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a checkpoint directory at ``path`` (atomically) and return it.

    Args:
        model: the model (a DDP / ``torch.compile`` wrapper is unwrapped). Its build spec is
            ``spec`` when given, else the one ``leandl.create_model`` (or ``leandl.load``)
            recorded, else one worked out by :func:`leandl.models.derive_spec` (transformers,
            timm and torchvision models, argument-free importable classes).
        path: the checkpoint directory to write (replaced atomically if it exists).
        spec: how to rebuild the model when leandl did not build it:
            ``{"name": "package.module:function", "kwargs": {...}}`` (any name
            ``create_model`` accepts; kwargs are JSON values). The function is called with
            the kwargs and must return the model before leandl's structural edits. It is
            checked now by rebuilding the architecture; import paths load only with
            ``trust=True``.
        metrics: numbers to store beside the weights (``read_meta(path)["metrics"]``).
        extra: any other JSON information.

    Returns:
        ``path``.

    Raises:
        CheckpointError: the model has no build spec and none can be worked out, or ``spec``
            is malformed or builds a different model.
    """
    from safetensors.torch import save_file

    import leandl

    inner = _unwrap(model)
    model_spec = _spec_for(inner, spec)
    state = inner.state_dict()
    path = Path(path)
    with atomic_dir(path) as tmp:
        try:
            save_file(state_tensors(inner), str(tmp / _WEIGHTS))
        except Exception as exc:  # safetensors raises its own type for a failed write
            os_err = as_os_error(exc)
            if os_err is None:
                raise
            raise CheckpointError(f"could not write the weights ({os_err.strerror})",
                                  where=str(path), fix="free disk space or choose another "
                                                       "directory; the old checkpoint, if "
                                                       "any, is untouched") from exc
        crash_point("checkpoint.weights", f"{path.parent.name}/{path.name}")
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "spec": model_spec,
            "edits": get_edits(inner),
            "state_dict_metadata": _versions(getattr(state, "_metadata", None)),
            "buffer_dtypes": _unsaved_buffer_dtypes(inner, state),
            "metrics": metrics or {},
            "extra": extra or {},
            "leandl_version": leandl.__version__,
            "torch_version": torch.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "weights_sha256": sha256_file(tmp / _WEIGHTS),
        }
        (tmp / _META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return path


_SPEC_FIX = ("build it with leandl.create_model(...), or pass leandl.save(model, path, spec={'name': "
             "'package.module:function', 'kwargs': {...}}) naming a function that builds it (an import "
             "path loads only with trust=True)")


def _spec_for(model: nn.Module, spec: dict[str, Any] | None) -> dict[str, Any]:
    """The spec to record: the model's own, the caller's (checked), or a derived one."""
    from leandl.errors import ModelError
    from leandl.models.derive import check_spec, derive_spec

    recorded = get_spec(model)
    if spec is None:
        if recorded is not None:
            return recorded
        try:
            return derive_spec(model)
        except ModelError as err:
            raise CheckpointError(
                f"this model has no build spec, so it cannot be saved without pickle; {err.what}",
                where=type(model).__name__, fix=_SPEC_FIX,
            ) from None
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec["name"]
            and isinstance(spec.get("kwargs", {}), dict) and set(spec) <= {"name", "kwargs"}):
        raise CheckpointError("spec must be {'name': str, 'kwargs': dict}", where="leandl.save(spec=...)",
                              fix=_SPEC_FIX)
    try:
        clean = json.loads(json.dumps({"name": spec["name"], "kwargs": dict(spec.get("kwargs", {}))}))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"spec kwargs must be JSON values ({err})", where="leandl.save(spec=...)",
                              fix="pass numbers, strings, lists and dicts") from None
    try:
        check_spec(model, clean, get_edits(model))
    except ModelError as err:
        raise CheckpointError(err.what, where="leandl.save(spec=...)", fix=err.fix) from None
    return clean


def _unsaved_buffer_dtypes(model: nn.Module, state: dict[str, Any]) -> dict[str, str]:
    """dtypes of floating buffers the state dict leaves out (non-persistent: rotary tables ...).

    Their values are rebuilt by the model's constructor; their dtype (after ``model.half()``,
    say) is recorded so the rebuilt model computes in the same precision.
    """
    return {name: str(buf.dtype).replace("torch.", "")
            for name, buf in model.named_buffers(remove_duplicate=False)
            if name not in state and buf.is_floating_point()}


def _versions(metadata: Any) -> dict[str, dict[str, int]]:
    """Module state-dict versions (``state_dict._metadata``) as JSON: prefix -> {"version": n}."""
    out: dict[str, dict[str, int]] = {}
    for prefix, local in (metadata or {}).items():
        version = local.get("version") if isinstance(local, dict) else None
        if isinstance(prefix, str) and isinstance(version, int) and not isinstance(version, bool):
            out[prefix] = {"version": version}
    return out


def read_meta(path: str | Path) -> dict[str, Any]:
    """Read and validate ``leandl.json`` of a checkpoint directory."""
    path = resolve_dir(path)
    meta_file = path / _META
    if not (meta_file.exists() or meta_file.is_symlink()):
        raise CheckpointError(
            f"no {_META} found", where=str(path),
            fix="pass a checkpoint directory written by leandl (it holds model.safetensors and leandl.json)",
        )
    try:
        meta = read_json_bounded(check_member_file(path, _META))
    except OSError as exc:
        raise CheckpointError(f"cannot read {_META} ({exc})", where=str(meta_file)) from exc
    _validate_meta(meta, meta_file)
    return meta


def _validate_meta(meta: Any, where: Path) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError("not a leandl checkpoint (missing 'format')", where=str(where))
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"unsupported checkpoint format_version {meta.get('format_version')!r}",
            where=str(where), fix=f"this leandl reads format_version {FORMAT_VERSION}",
        )
    spec = meta.get("spec")
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str)
            and isinstance(spec.get("kwargs", {}), dict)):
        raise CheckpointError("'spec' must be {name: str, kwargs: dict}", where=str(where))
    edits = meta.get("edits", [])
    if not (isinstance(edits, list) and all(isinstance(e, dict) and isinstance(e.get("kind"), str)
                                            for e in edits)):
        raise CheckpointError("'edits' must be a list of objects with a 'kind'", where=str(where))
    if not isinstance(meta.get("weights_sha256"), str):
        raise CheckpointError("'weights_sha256' is missing", where=str(where))
    dtypes = meta.get("buffer_dtypes", {})
    if not (isinstance(dtypes, dict) and all(
            isinstance(v, str) and isinstance(getattr(torch, v, None), torch.dtype) for v in dtypes.values())):
        raise CheckpointError("'buffer_dtypes' must map buffer names to torch dtype names", where=str(where))
    versions = meta.get("state_dict_metadata", {})
    if not (isinstance(versions, dict) and all(
            isinstance(v, dict) and type(v.get("version", 0)) is int for v in versions.values())):
        raise CheckpointError("'state_dict_metadata' must map module prefixes to {version: int}",
                              where=str(where))


def load(path: str | Path, trust: bool = False, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a checkpoint directory without unpickling anything.

    Args:
        path: the checkpoint directory.
        trust: allow a spec that names code outside leandl's registry (an import path), or
            library kwargs that could download weights, read files or run remote code.
        map_location: device for the weights.

    Returns:
        The model in eval mode, with its spec and edit log recorded (so it can be edited and
        saved again). The global CPU random state is left as it was.

    Raises:
        CheckpointError: missing files, altered weights (hash mismatch), untrusted spec (the
            message names the offending key), or weights that do not fit the rebuilt model.
    """
    from safetensors.torch import load_file

    from leandl.models import create_model, is_registry_name, spec_risks

    path = resolve_dir(path)
    meta = read_meta(path)
    weights = check_member_file(path, _WEIGHTS)
    actual = sha256_file(weights)
    if actual != meta["weights_sha256"]:
        raise CheckpointError(
            f"{_WEIGHTS} was altered: sha256 {actual[:16]}... does not match the recorded "
            f"{meta['weights_sha256'][:16]}...", where=str(path),
            fix="restore the original file or re-save the model; never load weights of unknown origin",
        )
    spec = meta["spec"]
    kwargs = spec.get("kwargs", {})
    try:
        registered = is_registry_name(spec["name"])
    except Exception:  # a malformed name is simply not a registry name
        registered = False
    if not registered and not trust:
        raise CheckpointError(
            f"the checkpoint's spec names code outside leandl's registry: '{spec['name']}'",
            where=str(path / _META),
            fix="load it only if you trust its source: leandl.load(path, trust=True) or --trust",
        )
    risks = spec_risks(spec["name"], kwargs)
    if risks and not trust:
        raise CheckpointError(
            f"the checkpoint's spec '{spec['name']}' could download or read files or run remote code: "
            + "; ".join(risks),
            where=str(path / _META),
            fix="a checkpoint only needs the architecture (its weights are in model.safetensors); load "
            "it only if you trust its source: leandl.load(path, trust=True) or --trust",
        )
    check_safetensors(weights)  # header, tensor count and sizes bounded by the file before loading
    try:
        tensors = load_file(str(weights), device=str(map_location))
    except Exception as exc:  # safetensors raises its own error types on a bad header
        raise CheckpointError(f"{_WEIGHTS} is not a valid safetensors file ({exc})", where=str(path)) from exc
    edits = meta.get("edits", [])
    with torch.random.fork_rng(devices=[]):  # random init must not move the caller's RNG
        model = _build_skipping_init(spec["name"], kwargs, edits, trust, tensors, weights.stat().st_size, path)
    if model is not None:
        try:
            _load_weights(model, tensors, meta, path)
        except CheckpointError:  # the meta-device build differs somehow: build it normally
            model = None
    if model is None:
        try:
            with torch.random.fork_rng(devices=[]):
                model = replay_edits(create_model(spec["name"], trust=trust, **kwargs), edits)
        except CheckpointError:
            raise
        except Exception as exc:  # any failure to rebuild from metadata is a bad checkpoint
            raise CheckpointError(
                f"the spec and edits in {_META} cannot rebuild the model ({type(exc).__name__}: {exc})",
                where=str(path), fix="the metadata is corrupted or from an incompatible leandl; re-save the model",
            ) from exc
        _load_weights(model, tensors, meta, path)
    model.eval()
    return model


def _load_weights(model: nn.Module, tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: Path) -> None:
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


def _build_skipping_init(name: str, kwargs: dict[str, Any], edits: list[dict[str, Any]], trust: bool,
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
                              f"-byte {_WEIGHTS}", where=str(path), fix=_FIT_FIX)


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


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP/compile wrapper."""
    inner = getattr(model, "module", None)
    if isinstance(inner, nn.Module) and type(model).__name__ in ("DistributedDataParallel", "DataParallel"):
        return inner
    return getattr(model, "_orig_mod", model)
