"""``torchao-x86``: PT2E static int8 with torchao's ``X86InductorQuantizer``, lowered to oneDNN.

The lowered graph is specialised to one input shape, so it is lowered on the first call at
each batch size (that call is slow; the bench's warm-up absorbs it).

Steps (reference B8, torchao 0.18): ``torch.export`` the eval model with a batch >= 2 example
and a symbolic batch dimension -> ``prepare_pt2e(m, X86InductorQuantizer())`` (folds BN;
activations uint8 per-tensor with a histogram observer, weights int8 per-channel symmetric) ->
run the calibration batches -> ``convert_pt2e`` -> ``lower_pt2e_quantized_to_x86`` (Inductor's
freezing passes fuse the Q/DQ pairs, conv, add and ReLU into oneDNN int8 ops; the result is an
FX graph that Python runs op by op, so small batches pay a per-op overhead: ORT's int8 wins at
batch 1). Measured on ResNet-56: ``benchmarks/results/deploy_chain.json`` (``*_torchao_x86``
rows; CPU named in each row). Compiling the converted graph with Inductor instead was tried once
on the pruned ResNet-56 (not committed): 1.6 % faster at batch 64 and 9 % at batch 1, where
ORT's int8 stayed about 5x faster; not done.

One module called twice (a block's single ``nn.ReLU`` applied after each conv, as in
torchvision's and leandl's ResNets) makes one "source partition" with two outputs, which the
quantizer's conv-add-relu fusion refuses ("Input partition has more than one output node"):
:func:`split_reused_module_partitions` relabels each unconnected call of a module as its own
partition before quantizing (metadata only; the graph is unchanged).

Structured inputs or outputs (keyword token ids and masks, dict or ``ModelOutput`` results) go
through :class:`leandl.deploy.io.ExportAdapter`, as for ONNX export: the exported graph takes
the input tensors positionally and returns the output tensors as a flat tuple (one output: the
tensor itself).

Artifact size: bytes of the tensors the converted graph reads (int8 weights, fp32 biases,
scales, zero points); no file format is involved.
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.deploy.backend import Backend, BackendUnavailable, BuiltBackend, Runner
from leandl.deploy.io import ExportAdapter, call_model, gather_call, needs_adapter, split_inputs
from leandl.errors import ModelError
from leandl.measure._util import as_args, batch_size_of, rebatch
from leandl.registry import BACKENDS

__all__ = ["TorchaoX86Backend", "graph_constant_bytes", "split_reused_module_partitions", "views_to_reshapes"]


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


def views_to_reshapes(gm: torch.fx.GraphModule) -> int:
    """Turn ``aten.view`` calls into ``aten.reshape`` (returns how many).

    The x86 lowering gives oneDNN's int8 convolutions channels-last outputs; a ``view`` the
    model applies to such a tensor (``x.view(n, -1)`` before a classifier: AlexNet, MobileViT)
    then fails ("view size is not compatible with input tensor's size and stride"). ``reshape``
    is a view where the strides allow one and a copy where they do not, with the same values.
    """
    n = 0
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target == torch.ops.aten.view.default:
            node.target = torch.ops.aten.reshape.default
            n += 1
    if n:
        gm.recompile()
    return n


def _partition_key(node: torch.fx.Node) -> tuple[str, str] | None:
    """The name ``get_source_partitions`` groups ``node`` under (its ``source_fn_stack`` entry,
    else its innermost ``nn_module_stack`` module, as in non-strict ``torch.export``)."""
    if node.op != "call_function":
        return None
    stack = node.meta.get("source_fn_stack")
    if stack:
        return ("source_fn_stack", str(stack[-1][0]))
    modules = node.meta.get("nn_module_stack")
    if modules:
        return ("nn_module_stack", str(list(modules.values())[-1][0]))
    return None


def split_reused_module_partitions(gm: torch.fx.GraphModule) -> int:
    """Give every unconnected call of a reused module its own partition name; returns how many
    modules were split.

    Nodes that share a partition name are grouped into connected pieces (an edge between two
    of them joins their pieces); every piece after the first gets ``name@callN``. A module
    called once, or a multi-node module whose nodes all connect, is left as it is.
    """
    groups: dict[tuple[str, str], list[torch.fx.Node]] = defaultdict(list)
    for node in gm.graph.nodes:
        key = _partition_key(node)
        if key is not None:
            groups[key].append(node)
    split = 0
    for (kind, name), nodes in groups.items():
        if len(nodes) < 2:
            continue
        parent = {n: n for n in nodes}

        def find(n: torch.fx.Node) -> torch.fx.Node:
            while parent[n] is not n:
                parent[n] = parent[parent[n]]
                n = parent[n]
            return n

        for n in nodes:
            for arg in n.all_input_nodes:
                if arg in parent:
                    parent[find(n)] = find(arg)
        piece: dict[torch.fx.Node, int] = {}
        for n in nodes:
            i = piece.setdefault(find(n), len(piece))
            if i == 0:
                continue
            if kind == "source_fn_stack":
                stack = list(n.meta["source_fn_stack"])
                stack[-1] = (f"{name}@call{i}", stack[-1][1])
                n.meta["source_fn_stack"] = stack
            else:
                modules = dict(n.meta["nn_module_stack"])
                last = list(modules)[-1]
                modules[last] = (f"{name}@call{i}", modules[last][1])
                n.meta["nn_module_stack"] = modules
        split += len(piece) > 1
    return split


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
        m = copy.deepcopy(model).cpu().eval()
        with torch.no_grad():
            adapter = ExportAdapter(m, example_inputs) if needs_adapter(example_inputs,
                                                                        call_model(m, example_inputs)) else None

        def flat(inputs: Any) -> tuple[Any, ...]:
            """The graph's positional tensors (through the adapter's slots for structured inputs)."""
            if adapter is None:
                return tuple(as_args(inputs))
            args, kwargs = split_inputs(inputs)
            return (*(args[i] for i in adapter.arg_slots), *(kwargs[k] for k in adapter.kw_slots))

        args = flat(example_inputs)
        if batch_size_of(args) < 2:
            args = tuple(rebatch(args, 2))
        batch = torch.export.Dim("batch", min=1)
        shapes = tuple({0: batch} if isinstance(a, torch.Tensor) and a.dim() else None for a in args)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # the adapter's forward(*tensors) is one variadic input to torch.export
            exported = torch.export.export(adapter or m, args,
                                           dynamic_shapes=(shapes,) if adapter is not None else shapes).module()
            split_reused_module_partitions(exported)
            quantizer = X86InductorQuantizer()
            quantizer.set_global(get_default_x86_inductor_quantization_config())
            prepared = prepare_pt2e(exported, quantizer)
            for b in calibration:
                prepared(*flat(b))
            converted = convert_pt2e(prepared)
            size = graph_constant_bytes(converted)
        lowered: dict[tuple[int, ...], Any] = {}

        def run(*inputs: Any, **kw_inputs: Any) -> Any:
            tensors = flat(gather_call(inputs, kw_inputs))  # the model's own call forms
            # lowering specialises the batch size: lower once per input shape (slow first call)
            key = tuple(int(d) for t in tensors if isinstance(t, torch.Tensor) for d in t.shape)
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                if key not in lowered:
                    lowered[key] = lower_pt2e_quantized_to_x86(converted, tensors)
                    views_to_reshapes(lowered[key])
                out = lowered[key](*tensors)
            if adapter is not None and isinstance(out, tuple | list) and len(out) == 1:
                return out[0]  # one output: a tensor, like the ONNX Runtime backends
            return out

        def make(threads: int | None) -> Runner:
            return run

        return BuiltBackend(self.name, size, make, notes="PT2E + X86InductorQuantizer, lowered with Inductor")
