"""``torchao-x86``: PT2E static int8 with torchao's ``X86InductorQuantizer``, lowered to oneDNN.

The lowered graph is specialised to one input shape, so it is lowered on the first call at
each batch size (that call is slow; the bench's warm-up absorbs it).

Steps (reference B8, torchao 0.18): ``torch.export`` the eval model with a batch >= 2 example
and a symbolic batch dimension -> ``prepare_pt2e(m, X86InductorQuantizer())`` (folds BN;
activations uint8 per-tensor with a histogram observer, weights int8 per-channel symmetric) ->
run the calibration batches -> ``convert_pt2e`` -> ``lower_pt2e_quantized_to_x86`` (Inductor
fuses the Q/DQ pairs into oneDNN int8 kernels). Measured 4.3x over eager at batch 64 on
ResNet-56 here (1.8x at batch 1), cosine 0.999998 to fp32. Building compiles (slow).

Artifact size: bytes of the tensors the converted graph reads (int8 weights, fp32 biases,
scales, zero points); no file format is involved.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.deploy.backend import Backend, BackendUnavailable, BuiltBackend, Runner
from leandl.errors import ModelError
from leandl.measure._util import as_args, batch_size_of, rebatch
from leandl.registry import BACKENDS

__all__ = ["TorchaoX86Backend", "graph_constant_bytes"]


def graph_constant_bytes(gm: torch.fx.GraphModule) -> int:
    """Bytes of the tensors the graph actually reads (``get_attr`` nodes): after
    ``convert_pt2e`` these are the int8 weights, scales and zero points; the original fp32
    weights stay attached to the module but are dead and not counted."""
    seen: set[int] = set()
    total = 0
    for node in gm.graph.nodes:
        if node.op != "get_attr":
            continue
        obj: Any = gm
        for part in str(node.target).split("."):
            obj = getattr(obj, part)
        if isinstance(obj, torch.Tensor) and id(obj) not in seen:
            seen.add(id(obj))
            total += obj.numel() * obj.element_size()
    return total


@BACKENDS.register("torchao-x86")
class TorchaoX86Backend(Backend):
    """torchao PT2E int8 (X86InductorQuantizer) lowered to x86 oneDNN kernels; slow to build."""

    name = "torchao-x86"
    slow_build = True
    needs_calibration = True

    @classmethod
    def unavailable(cls) -> str | None:
        """A reason when torchao is not installed (then the backend is skipped, not failed)."""
        import importlib.util

        if importlib.util.find_spec("torchao") is None:
            return "torchao is not installed (pip install torchao; 0.18 was checked)"
        return None

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        try:
            from torchao.quantization.pt2e.lowering import lower_pt2e_quantized_to_x86
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
            from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
                X86InductorQuantizer,
                get_default_x86_inductor_quantization_config,
            )
        except ImportError as exc:
            raise ModelError(f"torchao's PT2E x86 path is not importable ({exc})", where="torchao-x86",
                             fix="pip install torchao (0.18 was checked)") from exc
        if not calibration:
            raise BackendUnavailable("static int8 needs calibration batches (real inputs; or ask for random "
                                     "ones, e.g. leandl bench --random-calibration)")
        args = tuple(as_args(example_inputs))
        if batch_size_of(args) < 2:
            args = tuple(rebatch(args, 2))
        m = copy.deepcopy(model).cpu().eval()
        batch = torch.export.Dim("batch", min=1)
        shapes = tuple({0: batch} for _ in args)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            exported = torch.export.export(m, args, dynamic_shapes=shapes).module()
            quantizer = X86InductorQuantizer()
            quantizer.set_global(get_default_x86_inductor_quantization_config())
            prepared = prepare_pt2e(exported, quantizer)
            for b in calibration:
                prepared(*as_args(b))
            converted = convert_pt2e(prepared)
            size = graph_constant_bytes(converted)
        lowered: dict[tuple[int, ...], Any] = {}

        def run(*inputs: torch.Tensor) -> torch.Tensor:
            # lowering specialises the batch size: lower once per input shape (slow first call)
            key = tuple(int(d) for t in inputs for d in t.shape)
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                if key not in lowered:
                    lowered[key] = lower_pt2e_quantized_to_x86(converted, tuple(inputs))
                return lowered[key](*inputs)

        def make(threads: int | None) -> Runner:
            return run

        return BuiltBackend(self.name, size, make, notes="PT2E + X86InductorQuantizer, lowered with Inductor")
