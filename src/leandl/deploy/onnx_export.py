"""Export a PyTorch model to ONNX and check the file against eager PyTorch.

Exporter choice (measured on torch 2.13, see MEASURED.md "Runtimes"): the dynamo exporter
(``torch.onnx.export(..., dynamo=True)``, torch's default) takes 4-16 s per model, needs
``onnxscript``, emits opset 18 and then fails to down-convert some graphs to opset 17 (it keeps
the opset-18 model); the legacy TorchScript exporter takes < 1 s, honours ``opset_version=17``
exactly and gives graphs ONNX Runtime runs at the same speed, but warns that it is deprecated.
``exporter="auto"`` (the default) therefore uses the legacy exporter while torch still ships
it (its deprecation warning is silenced, the reason recorded here) and falls back to dynamo
when it is gone or fails; ``"dynamo"`` and ``"legacy"`` force one.

Inputs and outputs of any structure (:mod:`leandl.deploy.io`): integer token ids and masks,
several positional or keyword inputs, dict / ``ModelOutput`` / dataclass / tuple outputs. A
model with keyword or non-tensor inputs, or a structured output, is exported through
:class:`leandl.deploy.io.ExportAdapter` (flat tensors in, flat tuple out), which also keeps the
legacy exporter from filling in a Hugging Face model's default arguments positionally (that
fails with "got multiple values for argument 'use_cache'" on transformers 5). Dim 0 of every
input and output is the symbolic ``batch``; dim 1 of 2-D integer inputs is ``sequence``.

Every written file is loaded and run once by ONNX Runtime on the example batch
(:func:`validate_onnx`) before it is returned: a graph ONNX Runtime rejects is an exporter
failure (``auto`` then tries the next exporter) and, in the end, a :class:`ModelError` naming
the op when ONNX Runtime names one.

Export always uses a batch of >= 2 samples: a batch-1 example lets tracing specialise the
batch dimension to 1 (MEASURED.md), so a batch-1 example is repeated to two samples.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from leandl.deploy.io import (INPUT_NAME, OUTPUT_NAME, ExportAdapter, call_model, flatten_outputs, input_names,
                              input_tensors, needs_adapter, primary_output, split_inputs)
from leandl.errors import ModelError, UsageError
from leandl.measure._util import batch_size_of, rebatch, to_device

__all__ = ["export_onnx", "check_onnx", "compare_outputs", "validate_onnx", "ExportCheck", "Exporter", "INPUT_NAME",
           "OUTPUT_NAME"]

Exporter = Literal["auto", "legacy", "dynamo"]


@dataclass(frozen=True)
class ExportCheck:
    """Agreement between eager PyTorch and ONNX Runtime (or another backend) on the same inputs.

    Attributes:
        max_abs_diff: ``max |y_eager - y_onnx|`` over all outputs and samples.
        top1_agreement: fraction of rows (samples, or sample x position for sequence outputs)
            whose argmax over the last dim agrees on the primary output, in [0, 1].
        batch_size: samples compared.
        cosine: cosine similarity of the flattened primary output (eager vs backend).
        outputs: per output name, ``{"max_abs_diff": ..., "cosine": ...}``.
    """

    max_abs_diff: float
    top1_agreement: float
    batch_size: int
    cosine: float = float("nan")
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)


def _dynamic_axes(names: list[str], tensors: list[torch.Tensor], out_names: list[str],
                  outs: list[torch.Tensor]) -> dict[str, dict[int, str]]:
    """Batch (dim 0) of every input and output; also dim 1 (``sequence``) of 2-D integer inputs."""
    axes: dict[str, dict[int, str]] = {}
    for n, t in zip(names, tensors):
        if t.dim() >= 1:
            axes[n] = {0: "batch"}
            if t.dim() == 2 and not t.is_floating_point() and t.dtype != torch.bool:
                axes[n][1] = "sequence"
    for n, t in zip(out_names, outs):
        if t.dim() >= 1:
            axes[n] = {0: "batch"}
    return axes


def _export_legacy(model: nn.Module, args: tuple[Any, ...], path: Path, names: list[str], out_names: list[str],
                   axes: dict[str, dict[int, str]] | None, opset: int) -> None:
    with warnings.catch_warnings():
        # The legacy exporter warns that it is deprecated; it is chosen on purpose (module doc).
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset,
                          input_names=names, output_names=out_names, dynamic_axes=axes,
                          do_constant_folding=True)


def _export_dynamo(model: nn.Module, args: tuple[Any, ...], path: Path, names: list[str], out_names: list[str],
                   axes: dict[str, dict[int, str]] | None, opset: int) -> None:
    shapes = None
    if axes is not None:
        # torch.export's own form, one entry per parameter of forward (its dynamic_axes
        # conversion fails for the adapter's forward(*tensors)); dims with one name share a symbol
        dims: dict[str, Any] = {}
        shapes = tuple({d: dims.setdefault(label, torch.export.Dim(label, min=1)) for d, label in axes.get(n, {}).items()}
                       or None for n in names)
        if isinstance(model, ExportAdapter):
            shapes = (shapes,)  # forward(*tensors): one entry holding the varargs' specs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, args, dynamo=True, opset_version=opset, input_names=names,
                                    output_names=out_names, dynamic_shapes=shapes, verbose=False)
    if program is None:
        raise ModelError("the dynamo exporter returned no program", where=type(model).__name__)
    program.save(str(path))


_OP_PATTERNS = (  # (pattern, group of the op, group of the node name or 0)
    (re.compile(r"implementation for (\w+)\(\d+\) node with name '([^']*)'"), 1, 2),
    (re.compile(r"running (\w+) node\. Name:'([^']*)'"), 1, 2),
    (re.compile(r"In Node, \(\"([^\"]*)\", (\w+),"), 2, 1),
    (re.compile(r"Node \(([^)]*)\) Op \((\w+)\)"), 2, 1),
    (re.compile(r"([\w.]+:\w+|\w+)\(-?\d+\) is not a registered function/op"), 1, 0),
    (re.compile(r"No Op registered for (\w+)"), 1, 0),
)


def ort_op_of(message: str) -> str | None:
    """The op an ONNX Runtime error message names (``"Reshape (node '/h.0/Reshape')"``), or ``None``."""
    for pat, op, node in _OP_PATTERNS:
        m = pat.search(message)
        if m is not None:
            name = m.group(node) if node else ""
            return f"{m.group(op)} (node {name!r})" if name else m.group(op)
    return None


def validate_onnx(path: str | Path, inputs: Any) -> None:
    """Load ``path`` in ONNX Runtime and run it once on ``inputs``.

    Raises:
        ModelError: ONNX Runtime rejects the file or fails running it; the message names the
            op when ONNX Runtime does.
    """
    from leandl.deploy.io import feed_dict
    from leandl.deploy.ort_session import make_session

    try:
        session = make_session(path, threads=1)
        names = [i.name for i in session.get_inputs()]
        session.run(None, feed_dict(inputs, names))
    except Exception as exc:  # onnxruntime raises its own classes; ModelError from make_session too
        text = str(exc.__cause__ or exc)
        op = ort_op_of(text)
        first = " ".join(text.split())[:400]
        raise ModelError(f"ONNX Runtime cannot run the exported file{f' at op {op}' if op else ''}: {first}",
                         where=str(path),
                         fix="try another exporter (exporter='dynamo' / 'legacy') or opset, or replace the op") from exc


def export_onnx(
    model: nn.Module,
    example_inputs: Any,
    path: str | Path,
    *,
    dynamic_batch: bool = True,
    opset: int = 17,
    exporter: Exporter = "auto",
) -> Path:
    """Write ``model`` (in eval mode, on CPU) as an ONNX file that ONNX Runtime runs.

    Args:
        model: the model; its training flag is restored afterwards.
        example_inputs: a tensor, a tuple of positional inputs (optionally ending in a dict of
            keyword inputs) or a dict of keyword inputs, batch first, any dtype; batch 1 is
            repeated to 2.
        path: the ``.onnx`` file to write (parent folders are created).
        dynamic_batch: make dim 0 of inputs and outputs symbolic (``"batch"``) and dim 1 of 2-D
            integer inputs (``"sequence"``).
        opset: ONNX opset (>= 13 so per-channel QDQ quantization works).
        exporter: ``"auto"`` (legacy, else dynamo), ``"legacy"`` or ``"dynamo"``.

    Returns:
        The written path, after ONNX Runtime loaded and ran it (:func:`validate_onnx`).

    Raises:
        UsageError: an opset below 13 or an unknown exporter.
        ModelError: the model cannot be exported, or ONNX Runtime rejects every exported file
            (the exporters' and ONNX Runtime's messages are kept, the failing op named).
    """
    if opset < 13:
        raise UsageError(f"opset must be >= 13, got {opset}", where="opset", fix="use the default 17")
    if exporter not in ("auto", "legacy", "dynamo"):
        raise UsageError(f"unknown exporter '{exporter}'", where="exporter", fix="use auto, legacy or dynamo")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = to_device(example_inputs, torch.device("cpu"))
    if isinstance(inputs, list):
        inputs = tuple(inputs)
    if batch_size_of(inputs) < 2:
        inputs = rebatch(inputs, 2)
    was_training = model.training
    model.eval()
    order = {"auto": ("legacy", "dynamo"), "legacy": ("legacy",), "dynamo": ("dynamo",)}[exporter]
    errors: list[str] = []
    ort_error: ModelError | None = None
    try:
        with torch.no_grad():
            reference = call_model(model, inputs)
        flat_out = flatten_outputs(reference)
        if not flat_out:
            raise ModelError(f"the model output ({type(reference).__name__}) holds no tensor", where=type(model).__name__)
        tensors = input_tensors(inputs)
        names = input_names(inputs)
        if needs_adapter(inputs, reference):
            target: nn.Module = ExportAdapter(model, inputs)
            args: tuple[Any, ...] = tuple(tensors)
        else:
            target, args = model, split_inputs(inputs)[0]
        out_names = _unique([n for n, _ in flat_out], taken=set(names))
        axes = _dynamic_axes(names, tensors, out_names, [t for _, t in flat_out]) if dynamic_batch else None
        for kind in order:
            fn = _export_legacy if kind == "legacy" else _export_dynamo
            try:
                with torch.no_grad():
                    fn(target, args, path, names, out_names, axes, opset)
            except Exception as exc:  # exporter failures come in many types; all are reported
                errors.append(f"{kind}: {_exc_line(exc)}")
                continue
            try:
                validate_onnx(path, inputs)
                return path
            except ModelError as exc:
                ort_error = exc
                errors.append(f"{kind}: {exc.args[0] if exc.args else exc}")
        path.unlink(missing_ok=True)
    finally:
        model.train(was_training)
    if ort_error is not None and len(errors) == 1:
        raise ort_error
    raise ModelError("ONNX export failed (" + "; ".join(errors) + ")", where=type(model).__name__,
                     fix="check that the model is traceable (no data-dependent Python control flow)")


def _exc_line(exc: BaseException) -> str:
    """``Type: first line`` of an exporter error; for the dynamo exporter's generic wrapper
    ("Failed to export the model with torch.export ...") the cause's line, which says why."""
    while exc.__cause__ is not None and str(exc).startswith("Failed to export the model"):
        exc = exc.__cause__
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"


def _unique(names: list[str], taken: set[str]) -> list[str]:
    out: list[str] = []
    seen = set(taken)
    for n in names:
        m, i = n, 1
        while m in seen:
            m, i = f"{n}_{i}", i + 1
        seen.add(m)
        out.append(m)
    return out


def check_onnx(model: nn.Module, path: str | Path, inputs: Any, *, threads: int | None = None) -> ExportCheck:
    """Run the ONNX file and the eager model on ``inputs`` and compare all their outputs.

    Args:
        model: the eager reference.
        path: the ONNX file.
        inputs: a batch in any form :func:`export_onnx` accepts (tensor, tuple, dict), any batch
            size if the export was dynamic.
        threads: ONNX Runtime intra-op threads.
    """
    from leandl.deploy.ort_session import OrtModule

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = call_model(model, inputs)
    finally:
        model.train(was_training)
    got = call_model(OrtModule(path, threads=threads, outputs="all"), inputs)
    return compare_outputs(ref, got)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(a @ b) / (na * nb)


def compare_outputs(reference: Any, candidate: Any) -> ExportCheck:
    """Max absolute difference, top-1 agreement and cosine of two model outputs.

    ``reference`` may be any output structure (:func:`leandl.deploy.io.flatten_outputs`). A
    tensor ``candidate`` is compared with the reference's primary output
    (:func:`leandl.deploy.io.primary_output`); a structured one (tuple, dict, ``ModelOutput``)
    output by output, in flattened order.
    """
    ref_flat = flatten_outputs(reference)
    primary = primary_output(reference)
    if isinstance(candidate, torch.Tensor):
        name = next((n for n, t in ref_flat if t is primary), OUTPUT_NAME)
        pairs = [(name, primary, candidate)]
    else:
        got_flat = flatten_outputs(candidate)
        if len(got_flat) != len(ref_flat):
            raise ModelError(f"output counts differ: eager {len(ref_flat)} ({', '.join(n for n, _ in ref_flat)}) "
                             f"vs backend {len(got_flat)} ({', '.join(n for n, _ in got_flat)})")
        pairs = [(n, r, g) for (n, r), (_, g) in zip(ref_flat, got_flat)]
    per: dict[str, dict[str, float]] = {}
    diff, top1, cos, batch = 0.0, 1.0, float("nan"), 1
    for name, r0, g0 in pairs:
        r, g = r0.float().cpu(), g0.float().cpu()
        if r.shape != g.shape:
            raise ModelError(f"output shapes differ for '{name}': eager {tuple(r.shape)} vs backend {tuple(g.shape)}")
        d = float((r - g).abs().max()) if r.numel() else 0.0
        c = _cosine(r, g) if r.numel() else 1.0
        per[name] = {"max_abs_diff": d, "cosine": c}
        diff = max(diff, d)
        if r0 is primary:
            top1 = float((r.argmax(-1) == g.argmax(-1)).float().mean()) if r.dim() >= 1 and r.numel() else 1.0
            cos = c
            batch = int(r.shape[0]) if r.dim() else 1
    return ExportCheck(max_abs_diff=diff, top1_agreement=top1, batch_size=batch, cosine=cos, outputs=per)
