"""PyTorch backends: ``eager``, ``eager-channels-last``, ``torchscript`` (trace) and ``compile``.

- ``eager``: the model as is, in eval mode, under ``torch.inference_mode``; artifact = the
  safetensors weights.
- ``eager-channels-last``: the same with weights and 4-D inputs in channels-last (NHWC) memory
  format; inputs given as NCHW are converted on every call and that copy is timed. On CPU it
  spares oneDNN the NCHW <-> blocked reorders around every convolution (``leandl bench``,
  ResNet-56, batch 64, 2 threads: 1.21x faster than plain eager dense, 1.19x for a model pruned
  to 50 % of the MACs with widths in multiples of 16).
- ``torchscript``: ``torch.jit.trace`` with the example batch; works on torch 2.13 but every
  entry point warns it is deprecated (silenced here); artifact = the ``torch.jit.save`` bytes.
- ``compile``: ``torch.compile`` (Inductor); 1.25-2.7x over eager at batch 64 here but the first
  call compiles for 16-50 s per input shape (``slow_build``); artifact = the weights, since the
  compiled code is a cache, not a shippable file.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.deploy.backend import Backend, BuiltBackend, Runner
from leandl.deploy.io import split_inputs
from leandl.measure.size import weights_size_bytes
from leandl.registry import BACKENDS

__all__ = ["EagerBackend", "EagerChannelsLastBackend", "TorchScriptBackend", "CompileBackend"]


def _eval_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).cpu().eval()


@BACKENDS.register("eager")
class EagerBackend(Backend):
    """Eager PyTorch fp32 (the reference every other backend is compared with)."""

    name = "eager"

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        m = _eval_copy(model)
        return BuiltBackend(self.name, weights_size_bytes(m), lambda threads: m)


@BACKENDS.register("eager-channels-last")
class EagerChannelsLastBackend(Backend):
    """Eager PyTorch fp32 with channels-last (NHWC) weights and 4-D inputs."""

    name = "eager-channels-last"

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        m = _eval_copy(model).to(memory_format=torch.channels_last)

        def run(*args: Any) -> Any:
            return m(*(a.contiguous(memory_format=torch.channels_last)
                       if isinstance(a, torch.Tensor) and a.dim() == 4 else a for a in args))

        return BuiltBackend(self.name, weights_size_bytes(m), lambda threads: run)


_PROBES: dict[str, str | None] = {}


def _probe_torchscript() -> str | None:
    """``None`` when ``torch.jit.trace`` + ``freeze`` + a call work on a one-layer model, else why not.

    A torch whose TorchScript cannot trace even that cannot trace any model: the backend is
    then skipped with this reason instead of failing once per model. Cached per process.
    """
    if "torchscript" not in _PROBES:
        reason = None
        if not hasattr(torch, "jit") or not hasattr(torch.jit, "trace"):
            reason = f"torch {torch.__version__} has no torch.jit.trace"
        else:
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    probe = torch.jit.freeze(torch.jit.trace(nn.Linear(2, 2).eval(), torch.zeros(1, 2)))
                    probe(torch.zeros(1, 2))
            except Exception as exc:  # any failure on a one-layer model means TorchScript is unusable
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                reason = f"TorchScript does not work on torch {torch.__version__} ({type(exc).__name__}: {text})"[:240]
        _PROBES["torchscript"] = reason
    return _PROBES["torchscript"]


@BACKENDS.register("torchscript")
class TorchScriptBackend(Backend):
    """TorchScript trace (deprecated by torch, still works on 2.13 here; skipped where it cannot)."""

    name = "torchscript"

    @classmethod
    def unavailable(cls) -> str | None:
        """Why TorchScript cannot run on this torch (a one-layer trace fails), or ``None``."""
        return _probe_torchscript()

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        m = _eval_copy(model)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # "TorchScript is deprecated" on every call
            args, kwargs = split_inputs(example_inputs)
            if kwargs:
                traced = torch.jit.trace(m, example_kwarg_inputs=kwargs, strict=False)
            else:
                traced = torch.jit.trace(m, args, strict=False)
            traced = torch.jit.freeze(traced)
            buf = io.BytesIO()
            torch.jit.save(traced, buf)
        return BuiltBackend(self.name, len(buf.getvalue()), lambda threads: traced,
                            notes="torch.jit is deprecated in torch 2.13")


@BACKENDS.register("compile")
class CompileBackend(Backend):
    """torch.compile (Inductor): fast after a slow first call per input shape."""

    name = "compile"
    slow_build = True

    @classmethod
    def unavailable(cls) -> str | None:
        """Inductor compiles C++ on CPU: without a C++ compiler no model can run."""
        import shutil

        if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
            return "torch.compile (Inductor) needs a C++ compiler on CPU; none found (c++, g++, clang++)"
        return None

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        m = _eval_copy(model)
        compiled = torch.compile(m)

        def make(threads: int | None) -> Runner:
            return compiled  # type: ignore[return-value]

        return BuiltBackend(self.name, weights_size_bytes(m), make,
                            notes="compiles on the first call per input shape (16-50 s for ResNets)")
