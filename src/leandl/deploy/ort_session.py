"""ONNX Runtime inference sessions with a stated thread count, callable like a torch model.

``intra_op_num_threads`` is fixed when a session is created (ONNX Runtime has no per-call
setting), so a different thread count means a new session; ``inter_op_num_threads`` is 1 and
execution sequential, the setting for one model on a few CPU cores. Graph optimisations are
all enabled (``ORT_ENABLE_ALL``: constant folding, Conv+BN+ReLU fusion, QDQ fusion into
integer kernels for quantized models).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import torch

from leandl.deploy.io import feed_dict, gather_call
from leandl.errors import ModelError

__all__ = ["make_session", "OrtModule", "evaluate_onnx"]


def make_session(path: str | Path, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on CPU with ``threads`` intra-op threads.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``None`` lets ONNX Runtime choose: one per physical core).

    Raises:
        ModelError: ONNX Runtime cannot load the file (its message is kept).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # Workers spin between the ops of one run (ONNX Runtime's default: waking a sleeping worker
    # for each of ~100 small ops cost the int8 ResNet-56 about 4 % here), but stop as soon as
    # run() returns, so they never take the cores from whatever runs next (another session,
    # eager PyTorch); spinning on after a run had made alternating timings wrong.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ModelError(f"cannot read the ONNX file ({exc.strerror or exc})", where=str(path)) from None
    if not stat.S_ISREG(mode):  # ONNX Runtime would block on a FIFO and read a device forever
        raise ModelError("not a regular file (a directory, FIFO or device); refusing to open it", where=str(path))
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception classes
        raise ModelError(f"ONNX Runtime cannot load the model: {exc}", where=str(path)) from exc


class OrtModule:
    """Call an ONNX file like a model: torch tensors in (any dtype), torch tensors out (CPU).

    Inputs are given like the model's own (:mod:`leandl.deploy.io`): positional tensors, a
    tuple of them, or keyword tensors named like the graph inputs (``input_ids=...``).

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads of the session.
        outputs: ``"first"``: return the first graph output (a classifier's logits); ``"all"``:
            a dict ``{output name: tensor}`` when the graph has several outputs, the tensor
            when it has one.

    Example:
        >>> run = OrtModule("model.onnx", threads=2)   # doctest: +SKIP
        >>> logits = run(torch.randn(8, 1, 8, 8))      # doctest: +SKIP
    """

    def __init__(self, path: str | Path, threads: int | None = None, outputs: str = "first") -> None:
        if outputs not in ("first", "all"):
            raise ValueError(f"outputs must be 'first' or 'all', got {outputs!r}")
        self.path = Path(path)
        self.threads = threads
        self.outputs = outputs
        self.session = make_session(path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, *inputs: Any, **kw_inputs: Any) -> Any:
        try:
            feed = feed_dict(gather_call(inputs, kw_inputs), self.input_names)
        except ValueError as exc:
            raise ModelError(str(exc), where=str(self.path)) from exc
        try:
            out = self.session.run(None, feed)
        except Exception as exc:  # onnxruntime's InvalidArgument / Fail / RuntimeError for bad inputs
            takes = ", ".join(f"{i.name}: {i.type} {i.shape}" for i in self.session.get_inputs())
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ModelError(f"ONNX Runtime rejected the inputs ({first})", where=str(self.path),
                             fix=f"the graph takes {takes}") from exc
        if self.outputs == "first" or len(out) == 1:
            return torch.from_numpy(out[0])
        return {n: torch.from_numpy(o) for n, o in zip(self.output_names, out)}

    def eval(self) -> OrtModule:
        """No-op (a session has no training mode); lets measuring code treat it as a model."""
        return self


@torch.no_grad()
def evaluate_onnx(path: str | Path, loader: Any, threads: int | None = None) -> dict[str, float]:
    """Accuracy in [0, 1] and mean cross-entropy of an ONNX classifier over ``loader``.

    The loader yields ``(inputs, targets, ...)`` batches as leandl's loaders do.
    """
    run = OrtModule(path, threads=threads)
    n, correct, loss = 0, 0, 0.0
    for batch in loader:
        x, y = batch[0], batch[1]
        logits = run(x)
        correct += int((logits.argmax(-1) == y).sum())
        loss += float(torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
        n += int(y.numel())
    if n == 0:
        return {"accuracy": float("nan"), "loss": float("nan"), "n": 0}
    return {"accuracy": correct / n, "loss": loss / n, "n": n}
