"""Teachers: where they come from, how several are combined, and when their logits are cached.

A teacher is given as

* an ``nn.Module`` (already trained),
* a checkpoint directory (a string, or ``{"checkpoint": DIR, "trust": false}``; read with
  :func:`leandl.checkpoint.load`, so pruned/quantized teachers rebuild without pickle),
* a registry model ``{"model": "mnist1d_cnn", "kwargs": {...}}`` (sized to the data) or a library
  name (``torchvision:``, ``timm:``, ``hf:``); kwargs that download or read anything (pretrained
  ``weights``, ``checkpoint_path``, hub names, remote code) need ``"trust": true``,
* an import-path factory ``{"factory": "pkg.module:function", "kwargs": {...}, "trust": true}``
  (user code, so ``trust`` must be set).

Trust: a teacher obeys the rules of :func:`leandl.checkpoint.load` and
:func:`leandl.create_model` (see :mod:`leandl.models.safety`): without ``trust: true`` (the JSON
boolean, nothing else) a checkpoint whose ``leandl.json`` names an import path, or library kwargs
that reach a file, URL or hub, is refused before any of it is imported, read or fetched.

Several teachers are combined per sample into one target distribution at temperature ``T``:
``p^T(x) = sum_k w_k(x) softmax(z_k(x) / T)`` with ``fixed`` weights ``w_k`` (normalised to sum
to 1) or ``confidence`` weights (DLAD, Ma et al., arXiv 2008.07948): ``w_k(x) ∝ w_k c_k(x)``
with ``c_k(x) = max_j softmax(z_k(x))_j``, the teacher's own confidence. (DLAD trains a
per-client discriminator to estimate ``c_k``; with no access to the clients' data, the
teacher's max-probability is the estimate used here.) The combined "logits" handed to the
losses are ``T log p^T``, whose softmax at ``T`` is exactly ``p^T``; a single teacher's logits
are passed through unchanged.

Caching: teachers run in eval mode under ``no_grad``, so when the training data draws no
random augmentation (``DataBundle.augmented`` False) a sample's teacher logits are the same in
every epoch. They are then computed once per sample index (``state.indices``) and served from
memory afterwards; the counters ``teacher_cache_hits`` / ``teacher_forward_samples`` (logged
with every epoch record) and a log line say so. With augmentation they are recomputed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any, Literal, Union

import torch
from torch import Tensor, nn

from leandl.errors import ConfigError, ModelError

__all__ = ["TeacherLike", "load_teacher", "combine_teachers", "confidence_weights", "TeacherSet"]

log = logging.getLogger("leandl.distill")

TeacherLike = Union[nn.Module, str, dict[str, Any]]  # noqa: UP007 - evaluated at runtime by pydantic


def load_teacher(spec: TeacherLike, num_classes: int | None = None,
                 input_shape: Sequence[int] | None = None) -> nn.Module:
    """Build a teacher from any :data:`TeacherLike` form; returned frozen and in eval mode.

    Raises:
        ConfigError: the spec names no source, several sources, or unknown keys.
        CheckpointError / ModelError / UsageError: from loading or building the model.
    """
    if isinstance(spec, nn.Module):
        model = spec
    elif isinstance(spec, str):
        from leandl.checkpoint import load

        model = load(spec)
    elif isinstance(spec, dict):
        model = _from_dict(spec, num_classes, input_shape)
    else:
        raise ConfigError(f"a teacher must be a module, a checkpoint path or a mapping, got {type(spec).__name__}",
                          where="teacher")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _from_dict(spec: dict[str, Any], num_classes: int | None, input_shape: Sequence[int] | None) -> nn.Module:
    allowed = {"checkpoint", "model", "factory", "kwargs", "trust", "weight"}
    unknown = sorted(set(spec) - allowed)
    sources = [k for k in ("checkpoint", "model", "factory") if spec.get(k) is not None]
    if unknown or len(sources) != 1:
        raise ConfigError(
            f"a teacher needs exactly one of checkpoint / model / factory (got {sources or 'none'}"
            + (f"; unknown keys {unknown}" if unknown else "") + ")",
            where="teacher", fix="write e.g. {checkpoint: runs/x/stages/01-train/model}")
    trust = spec.get("trust", False)
    if not isinstance(trust, bool):
        raise ConfigError(f"trust must be true or false, got {trust!r}", where="teacher.trust")
    name = spec[sources[0]]
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{sources[0]} must be a non-empty string, got {name!r}", where=f"teacher.{sources[0]}")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"kwargs must be a mapping, got {type(kwargs).__name__}", where="teacher.kwargs")
    if sources[0] == "checkpoint":
        from leandl.checkpoint import load

        return load(name, trust=trust)
    from leandl.models import create_model, is_registry_name

    if sources[0] == "factory" and not trust:
        raise ConfigError(f"teacher factory '{name}' is user code; set trust: true to import it",
                          where="teacher.factory")
    if sources[0] == "model" and ":" in name and not is_registry_name(name):
        raise ConfigError(f"'{name}' is an import path; give it as factory: with trust: true", where="teacher.model")
    kwargs = dict(kwargs)
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    if input_shape is not None:
        kwargs.setdefault("input_shape", list(input_shape))
    return create_model(name, trust=trust, **kwargs)


def confidence_weights(logits: Sequence[Tensor], base: Sequence[float]) -> Tensor:
    """Per-sample teacher weights ``(K, B)``: ``w_k c_k(x) / sum_j w_j c_j(x)``, ``c = max softmax``."""
    conf = torch.stack([z.softmax(dim=-1).amax(dim=-1) for z in logits])  # (K, B)
    w = conf * torch.as_tensor(list(base), dtype=conf.dtype, device=conf.device)[:, None]
    return w / w.sum(dim=0, keepdim=True).clamp_min(1e-12)


def combine_teachers(logits: Sequence[Tensor], weights: Tensor | Sequence[float],
                     temperature: float = 1.0) -> Tensor:
    """Logits whose softmax at ``temperature`` is ``sum_k w_k softmax(z_k / T)``.

    Args:
        logits: K tensors ``(B, C)``.
        weights: ``(K,)`` fixed weights or ``(K, B)`` per-sample weights, each summing to 1 over K.
        temperature: T.

    Returns:
        ``T * log(sum_k w_k softmax(z_k / T))``, shape ``(B, C)``.
    """
    w = torch.as_tensor(weights, dtype=logits[0].dtype, device=logits[0].device) if not isinstance(
        weights, Tensor) else weights
    if w.dim() == 1:
        w = w[:, None].expand(len(logits), logits[0].shape[0])
    probs = torch.stack([(z / temperature).softmax(dim=-1) for z in logits])  # (K, B, C)
    mix = (w[..., None] * probs).sum(dim=0)
    return temperature * mix.clamp_min(1e-30).log()


class TeacherSet:
    """One or more frozen teachers run at ``after_forward``, with optional logit caching.

    Args:
        teachers: :data:`TeacherLike` specs (resolved at :meth:`setup`).
        weights: fixed weight per teacher (default equal); a mapping's ``weight`` key also works.
        weighting: ``fixed`` or ``confidence`` (DLAD-style per-sample weights).
        cache: cache logits by sample index; None = on exactly when the training data is not
            augmented (read from the train split's ``augment`` attribute, or told by the stage).
    """

    def __init__(self, teachers: Sequence[TeacherLike], weights: Sequence[float] | None = None,
                 weighting: Literal["fixed", "confidence"] = "fixed", cache: bool | None = None) -> None:
        if not teachers:
            raise ConfigError("distillation needs at least one teacher", where="teacher")
        if weighting not in ("fixed", "confidence"):
            raise ValueError(f"weighting must be 'fixed' or 'confidence', got {weighting!r}")
        specs = list(teachers)
        if weights is None:
            weights = [float(s.get("weight", 1.0)) if isinstance(s, dict) else 1.0 for s in specs]
        if len(weights) != len(specs) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be {len(specs)} non-negative numbers with a positive sum, got {weights}")
        self.specs = specs
        self.weights = [float(w) / sum(weights) for w in weights]
        self.weighting = weighting
        self.cache_requested = cache
        self.models: list[nn.Module] = []
        self.cache_on = False
        self._store: list[Tensor] = []
        self._filled: Tensor | None = None
        self.hits = 0
        self.computed = 0
        self._state: Any = None  # the training state whose counters (saved with resume state) count use
        self._announced = False

    # ------------------------------------------------------------ setup
    def setup(self, state: Any, input_shape: Sequence[int] | None = None, allow_cache: bool = True) -> None:
        """Resolve the teachers (sized to the data), move them to the device, decide caching."""
        if hasattr(state, "counters"):
            self._state = state  # a resumed run reports the restored counters even with no epoch left
        if not self.models:
            shape = input_shape or _loader_input_shape(state.train_loader)
            self.models = [load_teacher(s, state.num_classes, shape) for s in self.specs]
        self.models = [m.to(state.device).eval() for m in self.models]
        augmented = self.cache_requested is None and _is_augmented(state.train_loader)
        self.cache_on = allow_cache and bool(self.cache_requested if self.cache_requested is not None
                                             else not augmented)
        if self.cache_on:
            self._grow(len(getattr(state.train_loader, "dataset", ())))

    @property
    def first(self) -> nn.Module:
        """The first teacher (feature-based losses read its features)."""
        return self.models[0]

    # ------------------------------------------------------------ logits
    @torch.no_grad()
    def forward_all(self, inputs: Tensor) -> list[Tensor]:
        """Every teacher's logits for ``inputs`` (eval mode, no grad, no cache)."""
        outs = []
        for m in self.models:
            m.eval()
            out = m(inputs)
            outs.append((out[-1] if isinstance(out, list | tuple) else out).detach())
        return outs

    @torch.no_grad()
    def logits(self, inputs: Tensor, indices: Tensor | None, state: Any = None) -> list[Tensor]:
        """Every teacher's logits; from the cache when on and all ``indices`` are filled."""
        if state is not None:
            self._state = state
        if not self.cache_on or indices is None:
            self.computed += int(inputs.shape[0])
            if state is not None:
                state.count("teacher_forward_samples", int(inputs.shape[0]))
            return self.forward_all(inputs)
        idx = indices.to(torch.long).cpu()
        self._grow(int(idx.max()) + 1)
        if bool(self._filled[idx].all()):
            self.hits += int(idx.numel())
            if state is not None:
                state.count("teacher_cache_hits", idx.numel())
            self._announce()
            return [s[idx].to(inputs.device) for s in self._store]
        outs = self.forward_all(inputs)
        self.computed += int(inputs.shape[0])
        if not self._store:
            self._store = [torch.zeros(self._filled.numel(), o.shape[-1], dtype=o.dtype) for o in outs]
        for s, o in zip(self._store, outs, strict=True):
            s[idx] = o.cpu()
        self._filled[idx] = True
        if state is not None:
            state.count("teacher_forward_samples", idx.numel())
        return outs

    def _grow(self, n: int) -> None:
        size = 0 if self._filled is None else self._filled.numel()
        if n <= size:
            return
        filled = torch.zeros(n, dtype=torch.bool)
        if self._filled is not None:
            filled[:size] = self._filled
        self._filled = filled
        for i, s in enumerate(self._store):
            grown = torch.zeros(n, s.shape[1], dtype=s.dtype)
            grown[: s.shape[0]] = s
            self._store[i] = grown

    def _announce(self) -> None:
        if not self._announced:
            self._announced = True
            log.info("teacher logits served from the cache by sample index (training data not augmented)")

    def combined(self, logits: list[Tensor], temperature: float = 1.0) -> Tensor:
        """One teacher target (as logits at ``temperature``) from every teacher's logits."""
        if len(logits) == 1:
            return logits[0]
        if self.weighting == "confidence":
            return combine_teachers(logits, confidence_weights(logits, self.weights), temperature)
        return combine_teachers(logits, self.weights, temperature)

    def summary(self) -> dict[str, Any]:
        """Cache use for the stage metrics.

        Read from the training state's counters when logits were asked for with a state: those
        are saved with the resume state, so a resumed run reports the whole run's numbers (the
        in-memory tallies restart at 0 in the resumed process).
        """
        counters = getattr(self._state, "counters", None)
        hits = int(counters.get("teacher_cache_hits", 0)) if counters is not None else self.hits
        computed = int(counters.get("teacher_forward_samples", 0)) if counters is not None else self.computed
        return {"teacher_cache": bool(self.cache_on), "teacher_cache_hit_samples": hits,
                "teacher_forward_samples": computed, "teachers": len(self.models) or len(self.specs)}


def _loader_input_shape(loader: Any) -> tuple[int, ...] | None:
    ds = getattr(loader, "dataset", None)
    shape = getattr(ds, "sample_shape", None)
    if shape is not None:
        return tuple(shape)
    if ds is not None and len(ds) > 0:
        return tuple(ds[0][0].shape)
    return None


def _is_augmented(loader: Any) -> bool:
    ds = getattr(loader, "dataset", None)
    return getattr(ds, "augment", None) is not None


def as_teacher_set(teacher: Any, teachers: Sequence[TeacherLike] | None, weights: Sequence[float] | None,
                   weighting: str, cache: bool | None, who: str) -> TeacherSet:
    """A :class:`TeacherSet` from a technique's ``teacher`` / ``teachers`` arguments."""
    if isinstance(teacher, TeacherSet):
        return teacher
    specs = ([teacher] if teacher is not None else []) + list(teachers or [])
    if not specs:
        raise ModelError(f"technique '{who}' needs a teacher", where=f"{who}.teacher",
                         fix="pass teacher= (a module, checkpoint directory or {model: ...}) or use the distill stage")
    return TeacherSet([copy.copy(s) if isinstance(s, dict) else s for s in specs], weights, weighting, cache)
