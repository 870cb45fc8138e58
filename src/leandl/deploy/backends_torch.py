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
from leandl.measure._util import as_args
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


@BACKENDS.register("torchscript")
class TorchScriptBackend(Backend):
    """TorchScript trace (deprecated by torch, still works on 2.13)."""

    name = "torchscript"

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        m = _eval_copy(model)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # "TorchScript is deprecated" on every call
            traced = torch.jit.freeze(torch.jit.trace(m, as_args(example_inputs)))
            buf = io.BytesIO()
            torch.jit.save(traced, buf)
        return BuiltBackend(self.name, len(buf.getvalue()), lambda threads: traced,
                            notes="torch.jit is deprecated in torch 2.13")


@BACKENDS.register("compile")
class CompileBackend(Backend):
    """torch.compile (Inductor): fast after a slow first call per input shape."""

    name = "compile"
    slow_build = True

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        m = _eval_copy(model)
        compiled = torch.compile(m)

        def make(threads: int | None) -> Runner:
            return compiled  # type: ignore[return-value]

        return BuiltBackend(self.name, weights_size_bytes(m), make,
                            notes="compiles on the first call per input shape (16-50 s for ResNets)")
