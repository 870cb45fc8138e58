"""Export a PyTorch model to ONNX and check the file against eager PyTorch.

Exporter choice (measured on torch 2.13, see MEASURED.md "Runtimes"): the dynamo exporter
(``torch.onnx.export(..., dynamo=True)``, torch's default) takes 4-16 s per model, needs
``onnxscript``, emits opset 18 and then fails to down-convert some graphs to opset 17 (it keeps
the opset-18 model); the legacy TorchScript exporter takes < 1 s, honours ``opset_version=17``
exactly and gives graphs ONNX Runtime runs at the same speed, but warns that it is deprecated.
``exporter="auto"`` (the default) therefore uses the legacy exporter while torch still ships
it (its deprecation warning is silenced, the reason recorded here) and falls back to dynamo
when it is gone or fails; ``"dynamo"`` and ``"legacy"`` force one.

Export always uses a batch of >= 2 samples: a batch-1 example lets tracing specialise the
batch dimension to 1 (MEASURED.md), so a batch-1 example is repeated to two samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from leandl.errors import ModelError, UsageError
from leandl.measure._util import as_args, batch_size_of, rebatch

__all__ = ["export_onnx", "check_onnx", "compare_outputs", "ExportCheck", "Exporter", "INPUT_NAME", "OUTPUT_NAME"]

Exporter = Literal["auto", "legacy", "dynamo"]
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class ExportCheck:
    """Agreement between eager PyTorch and ONNX Runtime on the same inputs.

    Attributes:
        max_abs_diff: ``max |y_eager - y_onnx|`` over all outputs and samples.
        top1_agreement: fraction of samples whose argmax over the last dim agrees, in [0, 1].
        batch_size: samples compared.
    """

    max_abs_diff: float
    top1_agreement: float
    batch_size: int


def _input_names(n: int) -> list[str]:
    return [INPUT_NAME] if n == 1 else [f"{INPUT_NAME}{i}" for i in range(n)]


def _export_legacy(model: nn.Module, args: tuple[Any, ...], path: Path, dynamic: bool, opset: int) -> None:
    names = _input_names(len(args))
    axes = {n: {0: "batch"} for n in [*names, OUTPUT_NAME]} if dynamic else None
    with warnings.catch_warnings():
        # The legacy exporter warns that it is deprecated; it is chosen on purpose (module doc).
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset,
                          input_names=names, output_names=[OUTPUT_NAME], dynamic_axes=axes,
                          do_constant_folding=True)


def _export_dynamo(model: nn.Module, args: tuple[Any, ...], path: Path, dynamic: bool, opset: int) -> None:
    import inspect

    names = _input_names(len(args))
    shapes = None
    if dynamic:
        params = [p for p in inspect.signature(model.forward).parameters][: len(args)]
        batch = torch.export.Dim("batch", min=1)
        shapes = {p: {0: batch} for p in params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, args, dynamo=True, opset_version=opset, input_names=names,
                                    output_names=[OUTPUT_NAME], dynamic_shapes=shapes, verbose=False)
    if program is None:
        raise ModelError("the dynamo exporter returned no program", where=type(model).__name__)
    program.save(str(path))


def export_onnx(
    model: nn.Module,
    example_inputs: Any,
    path: str | Path,
    *,
    dynamic_batch: bool = True,
    opset: int = 17,
    exporter: Exporter = "auto",
) -> Path:
    """Write ``model`` (in eval mode, on CPU) as an ONNX file.

    Args:
        model: the model; its training flag is restored afterwards.
        example_inputs: a tensor or tuple of tensors, batch first; batch 1 is repeated to 2.
        path: the ``.onnx`` file to write (parent folders are created).
        dynamic_batch: make dim 0 of inputs and output symbolic (``"batch"``).
        opset: ONNX opset (>= 13 so per-channel QDQ quantization works).
        exporter: ``"auto"`` (legacy, else dynamo), ``"legacy"`` or ``"dynamo"``.

    Returns:
        The written path.

    Raises:
        UsageError: an opset below 13 or an unknown exporter.
        ModelError: the model cannot be exported (the exporter's message is kept).
    """
    if opset < 13:
        raise UsageError(f"opset must be >= 13, got {opset}", where="opset", fix="use the default 17")
    if exporter not in ("auto", "legacy", "dynamo"):
        raise UsageError(f"unknown exporter '{exporter}'", where="exporter", fix="use auto, legacy or dynamo")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = tuple(a.detach().cpu() if isinstance(a, torch.Tensor) else a for a in as_args(example_inputs))
    if batch_size_of(args) < 2:
        args = tuple(rebatch(args, 2))
    was_training = model.training
    model.eval()
    order = {"auto": ("legacy", "dynamo"), "legacy": ("legacy",), "dynamo": ("dynamo",)}[exporter]
    errors: list[str] = []
    try:
        for kind in order:
            fn = _export_legacy if kind == "legacy" else _export_dynamo
            try:
                with torch.no_grad():
                    fn(model, args, path, dynamic_batch, opset)
                return path
            except Exception as exc:  # exporter failures come in many types; all are reported
                errors.append(f"{kind}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        model.train(was_training)
    raise ModelError("ONNX export failed (" + "; ".join(errors) + ")", where=type(model).__name__,
                     fix="check that the model is traceable (no data-dependent Python control flow)")


def check_onnx(model: nn.Module, path: str | Path, inputs: Any, *, threads: int | None = None) -> ExportCheck:
    """Run the ONNX file and the eager model on ``inputs`` and compare their outputs.

    Args:
        model: the eager reference.
        path: the ONNX file.
        inputs: a tensor (or tuple) batch, any batch size if the export was dynamic.
        threads: ONNX Runtime intra-op threads.
    """
    from leandl.deploy.ort_session import OrtModule

    was_training = model.training
    model.eval()
    args = as_args(inputs)
    try:
        with torch.no_grad():
            ref = model(*args)
    finally:
        model.train(was_training)
    got = OrtModule(path, threads=threads)(*args)
    return compare_outputs(ref, got)


def compare_outputs(reference: torch.Tensor, candidate: torch.Tensor) -> ExportCheck:
    """Max absolute difference and top-1 agreement of two ``(batch, ..., classes)`` outputs."""
    ref = (reference[-1] if isinstance(reference, list | tuple) else reference).float().cpu()
    got = (candidate[-1] if isinstance(candidate, list | tuple) else candidate).float().cpu()
    if ref.shape != got.shape:
        raise ModelError(f"output shapes differ: eager {tuple(ref.shape)} vs backend {tuple(got.shape)}")
    diff = float((ref - got).abs().max()) if ref.numel() else 0.0
    agree = float((ref.argmax(-1) == got.argmax(-1)).float().mean()) if ref.dim() >= 1 else 1.0
    return ExportCheck(max_abs_diff=diff, top1_agreement=agree, batch_size=int(ref.shape[0]) if ref.dim() else 1)

