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
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl._checkpoint_fit import WEIGHTS, build_skipping_init, load_weights
from leandl.errors import CheckpointError
from leandl.serialization import (as_os_error, atomic_dir, check_member_file, check_safetensors, crash_point,
                                  read_json_bounded, resolve_dir)
from leandl.spec import get_edits, get_spec, replay_edits

__all__ = ["save", "load", "read_meta", "state_tensors", "FORMAT", "FORMAT_VERSION"]

FORMAT = "leandl-checkpoint"
FORMAT_VERSION = 1
_WEIGHTS = WEIGHTS
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
    if not registered and ":" not in str(spec["name"]):
        from leandl.registry import MODELS

        raise CheckpointError(
            f"the checkpoint's model '{spec['name']}' is not a registered model name (it was registered "
            "by code that has not been imported in this process, or by another leandl version)",
            where=str(path / _META),
            fix="import the module that registers it (@MODELS.register) before loading; registered now: "
            + ", ".join(sorted(MODELS.names())[:12]) + (" ..." if len(MODELS.names()) > 12 else ""),
        )
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
        model = build_skipping_init(spec["name"], kwargs, edits, trust, tensors, weights.stat().st_size, path)
    if model is not None:
        try:
            load_weights(model, tensors, meta, path)
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
        load_weights(model, tensors, meta, path)
    model.eval()
    return model


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP/compile wrapper."""
    inner = getattr(model, "module", None)
    if isinstance(inner, nn.Module) and type(model).__name__ in ("DistributedDataParallel", "DataParallel"):
        return inner
    return getattr(model, "_orig_mod", model)
