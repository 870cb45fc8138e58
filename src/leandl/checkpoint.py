"""Model checkpoints: safe to load, exact to rebuild.

A checkpoint is a directory written atomically::

    model.safetensors   the weights (and buffers: BN statistics, quantization scales, masks)
    leandl.json         format version, model spec (registry name or import path + kwargs),
                        structural edits in order, metrics, extra info, versions,
                        sha256 of model.safetensors

Loading builds the model from its spec, replays the edits (see :mod:`leandl.spec`), then
loads the weights. Nothing is unpickled. A spec naming code outside leandl's registry is
built only when the caller passes ``trust=True``. A weights file whose hash differs from the
one recorded is refused.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.errors import CheckpointError
from leandl.serialization import atomic_dir, resolve_dir
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
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a checkpoint directory at ``path`` (atomically) and return it.

    Raises:
        CheckpointError: the model carries no build spec (it was not made by
            ``leandl.create_model``), so it could not be rebuilt without pickle.
    """
    from safetensors.torch import save_file

    import leandl

    spec = get_spec(_unwrap(model))
    if spec is None:
        raise CheckpointError(
            "this model has no build spec, so it cannot be saved without pickle",
            where=type(model).__name__,
            fix="build it with leandl.create_model(name or 'package.module:function', ...)",
        )
    path = Path(path)
    with atomic_dir(path) as tmp:
        save_file(state_tensors(_unwrap(model)), str(tmp / _WEIGHTS))
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "spec": spec,
            "edits": get_edits(_unwrap(model)),
            "metrics": metrics or {},
            "extra": extra or {},
            "leandl_version": leandl.__version__,
            "torch_version": torch.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "weights_sha256": sha256_file(tmp / _WEIGHTS),
        }
        (tmp / _META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """Read and validate ``leandl.json`` of a checkpoint directory."""
    path = resolve_dir(path)
    meta_file = path / _META
    if not meta_file.is_file():
        raise CheckpointError(
            f"no {_META} found", where=str(path),
            fix="pass a checkpoint directory written by leandl (it holds model.safetensors and leandl.json)",
        )
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{_META} is not valid JSON ({exc})", where=str(meta_file)) from exc
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


def load(path: str | Path, trust: bool = False, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a checkpoint directory without unpickling anything.

    Args:
        path: the checkpoint directory.
        trust: allow a spec that names code outside leandl's registry (an import path).
        map_location: device for the weights.

    Raises:
        CheckpointError: missing files, altered weights (hash mismatch), untrusted spec, or
            weights that do not fit the rebuilt model.
    """
    from safetensors.torch import load_file

    from leandl.models import create_model, is_registry_name

    path = resolve_dir(path)
    meta = read_meta(path)
    weights = path / _WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{_WEIGHTS} is missing", where=str(path))
    actual = sha256_file(weights)
    if actual != meta["weights_sha256"]:
        raise CheckpointError(
            f"{_WEIGHTS} was altered: sha256 {actual[:16]}... does not match the recorded "
            f"{meta['weights_sha256'][:16]}...", where=str(path),
            fix="restore the original file or re-save the model; never load weights of unknown origin",
        )
    spec = meta["spec"]
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
    try:
        tensors = load_file(str(weights), device=str(map_location))
    except Exception as exc:  # safetensors raises its own error types on a bad header
        raise CheckpointError(f"{_WEIGHTS} is not a valid safetensors file ({exc})", where=str(path)) from exc
    try:
        model = create_model(spec["name"], **spec.get("kwargs", {}))
        model = replay_edits(model, meta.get("edits", []))
    except CheckpointError:
        raise
    except Exception as exc:  # any failure to rebuild from metadata is a bad checkpoint
        raise CheckpointError(
            f"the spec and edits in {_META} cannot rebuild the model ({type(exc).__name__}: {exc})",
            where=str(path), fix="the metadata is corrupted or from an incompatible leandl; re-save the model",
        ) from exc
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"the weights do not fit the rebuilt model: {str(exc).splitlines()[0]}", where=str(path),
        ) from exc
    model.eval()
    return model


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP/compile wrapper."""
    inner = getattr(model, "module", None)
    if isinstance(inner, nn.Module) and type(model).__name__ in ("DistributedDataParallel", "DataParallel"):
        return inner
    return getattr(model, "_orig_mod", model)
