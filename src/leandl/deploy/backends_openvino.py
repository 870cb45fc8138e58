"""OpenVINO backends: ``openvino`` (the fp32 ONNX file) and ``openvino-int8`` (the static int8
QDQ ONNX file that ``onnxruntime-int8`` writes, run by OpenVINO's CPU plugin).

The int8 file is the same one: calibrated, per-channel, bias-corrected
(:func:`leandl.deploy.ptq_onnx`); OpenVINO reads its QuantizeLinear/DequantizeLinear pairs and
runs its own int8 kernels, so the two backends differ only in the runtime. On the pruned
ResNet-56 at batch 64 (2 threads, AVX-512 VNNI CPU) OpenVINO ran that file faster than ONNX
Runtime (``benchmarks/deploy.py``). Float parts run in fp32 (``INFERENCE_PRECISION_HINT``:
OpenVINO would otherwise pick bf16 on CPUs that have it), and OpenVINO's threads are not pinned
to cores, so it shares the machine with PyTorch in one process.

OpenVINO is optional (``pip install openvino``; 2026.4 was checked): without it both backends
are skipped with that reason.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leandl.deploy.backend import Backend, BuiltBackend, built_from_file
from leandl.deploy.io import feed_dict, gather_call
from leandl.errors import ModelError
from leandl.registry import BACKENDS

__all__ = ["OpenVinoModule", "OpenVinoBackend", "OpenVinoInt8Backend"]


@functools.cache
def _core() -> Any:
    """The process's one ``openvino.Core``, shared by every :class:`OpenVinoModule`. A new Core per
    model is known to crash OpenVINO after a few dozen loads in one process, and the test suite,
    which builds that many, segfaulted once (intermittently) while each module made its own."""
    import openvino as ov

    return ov.Core()


def _missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        return "openvino is not installed (pip install openvino; 2026.4 was checked)"
    return None


class OpenVinoModule:
    """Call an ONNX file through OpenVINO's CPU plugin like a model (torch tensors in and out).

    The model is compiled once per input shape (static shapes run OpenVINO's fastest kernels);
    the first call with a new shape compiles (about a second for a small CNN).

    Args:
        path: the ``.onnx`` file.
        threads: inference threads (``None``: OpenVINO's choice).
        outputs: ``"first"`` or ``"all"`` (a dict by output name when there are several), as
            :class:`leandl.deploy.OrtModule`.
    """

    def __init__(self, path: str | Path, threads: int | None = None, outputs: str = "first") -> None:
        if outputs not in ("first", "all"):
            raise ValueError(f"outputs must be 'first' or 'all', got {outputs!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.path, self.outputs = Path(path), outputs
        self._core = _core()
        try:
            self._model = self._core.read_model(str(path))
        except Exception as exc:  # openvino raises its own RuntimeError subclasses
            raise ModelError(f"OpenVINO cannot read the model: {exc}", where=str(path)) from exc
        self.input_names = [p.get_any_name() for p in self._model.inputs]
        self.output_names = [p.get_any_name() for p in self._model.outputs]
        self._dtypes = {p.get_any_name(): p.get_element_type().to_dtype() for p in self._model.inputs}
        self._config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                                        "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False}
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled: dict[tuple[tuple[int, ...], ...], Any] = {}

    def _request(self, feed: dict[str, np.ndarray]) -> Any:
        key = tuple(tuple(a.shape) for a in feed.values())
        if key not in self._compiled:
            model = self._model.clone()
            model.reshape({name: list(a.shape) for name, a in feed.items()})
            try:
                self._compiled[key] = self._core.compile_model(model, "CPU", self._config).create_infer_request()
            except Exception as exc:
                raise ModelError(f"OpenVINO cannot compile the model for inputs {list(key)}: {exc}",
                                 where=str(self.path)) from exc
        return self._compiled[key]

    def __call__(self, *inputs: Any, **kw_inputs: Any) -> Any:
        try:
            feed = feed_dict(gather_call(inputs, kw_inputs), self.input_names)
        except ValueError as exc:
            raise ModelError(str(exc), where=str(self.path)) from exc
        feed = {n: np.ascontiguousarray(a.astype(self._dtypes[n], copy=False)) for n, a in feed.items()}
        request = self._request(feed)
        result = request.infer(feed)
        out = [torch.from_numpy(np.array(result[port])) for port in request.model_outputs]
        if self.outputs == "first" or len(out) == 1:
            return out[0]
        return dict(zip(self.output_names, out))

    def eval(self) -> OpenVinoModule:
        """No-op, like :meth:`leandl.deploy.OrtModule.eval`."""
        return self


class _OpenVinoOverOnnx(Backend):
    """OpenVINO over the ONNX file that the backend named by ``reuses`` builds."""

    @classmethod
    def unavailable(cls) -> str | None:
        """A reason when openvino is not installed."""
        return _missing()

    def from_artifact(self, artifact: Path, notes: str = "") -> BuiltBackend:
        """OpenVINO over ``artifact``, the file the ``reuses`` backend built."""
        return built_from_file(self.name, Path(artifact), lambda p, t: OpenVinoModule(p, threads=t, outputs="all"),
                               notes)

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        source = BACKENDS.get(str(self.reuses))().build(model, example_inputs, calibration, workdir)
        return self.from_artifact(source.artifact, source.notes)


@BACKENDS.register("openvino")
class OpenVinoBackend(_OpenVinoOverOnnx):
    """ONNX export + OpenVINO (CPU plugin), fp32: the file of ``onnxruntime``."""

    name = "openvino"
    reuses = "onnxruntime"


@BACKENDS.register("openvino-int8")
class OpenVinoInt8Backend(_OpenVinoOverOnnx):
    """leandl's static int8 QDQ ONNX file (calibrated, bias-corrected: ``onnxruntime-int8``'s) run by OpenVINO."""

    name = "openvino-int8"
    needs_calibration = True
    reuses = "onnxruntime-int8"
