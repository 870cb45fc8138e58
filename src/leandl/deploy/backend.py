"""The backend interface: turn a torch model into something that runs, and say its size.

A backend is a class registered in :data:`leandl.registry.BACKENDS` with a ``build`` method::

    built = BACKENDS.get("onnxruntime-int8")().build(model, example_inputs, calibration, workdir)
    run = built.runner(threads=2)      # callable: inputs -> logits tensor
    built.size_bytes                   # bytes of the deployable artifact

``runner(threads)`` exists because some runtimes fix their thread count when a session is
created (ONNX Runtime); torch backends run under ``torch.set_num_threads`` set by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["Backend", "BuiltBackend", "Runner", "BackendUnavailable", "built_from_file"]


class BackendUnavailable(RuntimeError):
    """A backend cannot run here at all (this torch, missing package, no calibration data).

    Raised by :meth:`Backend.build`; ``leandl bench`` reports the backend as
    ``skipped: <reason>`` instead of ``failed: ...`` (a failure is a problem of the model).
    """

Runner = Callable[..., torch.Tensor]


@dataclass
class BuiltBackend:
    """A model built for one backend.

    Attributes:
        name: the backend's registry name.
        size_bytes: bytes of the deployable artifact (file, or serialized weights).
        make_runner: ``threads -> callable``; the callable maps input tensors to logits.
        artifact: path of the artifact on disk, when there is one.
        notes: facts worth reporting (compile time, exporter used ...).
    """

    name: str
    size_bytes: int
    make_runner: Callable[[int | None], Runner]
    artifact: Path | None = None
    notes: str = ""

    def runner(self, threads: int | None = None) -> Runner:
        """A callable running the built model with ``threads`` intra-op threads."""
        return self.make_runner(threads)


def built_from_file(name: str, path: Path, open_runner: Callable[[Path, int | None], Runner],
                    notes: str = "") -> BuiltBackend:
    """A backend built as one file, run by ``open_runner(path, threads)`` (ONNX Runtime, OpenVINO)."""
    return BuiltBackend(name, Path(path).stat().st_size, lambda threads: open_runner(path, threads),
                        artifact=Path(path), notes=notes)


class Backend:
    """Base class of deployment backends.

    Class attributes:
        name: registry name.
        slow_build: building or the first call takes long (``torch.compile``: 16-50 s).
        needs_calibration: ``build`` uses the calibration batches (static int8); without them
            it raises :class:`BackendUnavailable`.
        reuses: the backend whose artifact this one runs unchanged (``openvino-int8`` runs the
            file of ``onnxruntime-int8``): built together, the artifact is made once and handed
            to :meth:`from_artifact`.
    """

    name: ClassVar[str] = "backend"
    slow_build: ClassVar[bool] = False
    needs_calibration: ClassVar[bool] = False
    reuses: ClassVar[str | None] = None

    def from_artifact(self, artifact: Path, notes: str = "") -> BuiltBackend:
        """This backend over the artifact already built by :attr:`reuses`."""
        raise TypeError(f"backend class {type(self).__name__} does not run another backend's artifact")

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot run in this environment (``None``: it can). Checked before
        :meth:`build`; a reason makes every row of the backend ``skipped: <reason>``."""
        return None

    def build(self, model: nn.Module, example_inputs: Any, calibration: Sequence[Any], workdir: Path) -> BuiltBackend:
        """Build ``model`` (eval mode, CPU) for this backend; files go under ``workdir``."""
        raise TypeError(f"backend class {type(self).__name__} does not define build()")
