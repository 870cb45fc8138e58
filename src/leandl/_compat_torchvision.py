"""Import torchvision beside a torch build its compiled ops were not made for.

Why: PyPI's Linux x86_64 torchvision wheels are CUDA builds (e.g. ``0.28.0+cu130``). Their
compiled ops library, ``torchvision/_C.so``, links ``libtorch_cuda.so`` and ``libc10_cuda.so``,
which a CPU build of torch (``torch==2.13.0+cpu``, the wheel ``constraints.txt`` pins on these
machines) does not ship. torchvision then carries on without its C++ ops
(``torchvision.extension._has_ops()`` is False) and guards most of its op registrations on
that, but ``torchvision/_meta_registrations.py`` registers fake kernels for ``torchvision::nms``
and ``torchvision::qnms`` unguarded, so ``import torchvision`` dies with
``RuntimeError: operator torchvision::nms does not exist`` (seen with torchvision 0.28.0 and
0.29.x). timm and transformers import torchvision when it is installed, so they die with it.

What: :func:`import_torchvision` imports torchvision as usual. Only when that fails with exactly
this error does it drop the half-imported ``torchvision`` modules, define the *schemas* (no
kernels) of the ops those fake registrations need, and import again. Then models, transforms,
datasets and ``get_model`` work; the C++ ops (``torchvision.ops.nms``, ``roi_align``,
``deform_conv2d`` ...) raise torchvision's own "Couldn't load custom C++ ops" error when
called, and ``torchvision.io``'s native image decoding is unavailable, as for any torchvision
whose ops did not load. Nothing is changed when torchvision's ops load (a torch build that
matches it, CPU or CUDA) or when the import fails for another reason.

When to call it: before the first ``import torchvision``, ``import timm`` or
``import transformers`` in a process (each of those imports torchvision); calling it more than
once is cheap. ``import leandl`` does not call it, so importing leandl stays light.
"""

from __future__ import annotations

import importlib
import re
import sys
from types import ModuleType

__all__ = ["import_torchvision", "shim_applied"]

# Schemas as torchvision's C++ library declares them (torchvision/csrc/ops/nms.cpp, qnms).
_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_MISSING_OP = re.compile(r"operator torchvision::(\w+) does not exist")
_applied = False


def import_torchvision() -> ModuleType:
    """Return the ``torchvision`` module, importing it beside a CPU torch if need be.

    Raises:
        ImportError: torchvision is not installed (or fails to import for another reason).
        RuntimeError: torchvision fails to import for a reason this shim does not cover.
    """
    global _applied
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as err:
        match = _MISSING_OP.search(str(err))
        if match is None or match.group(1) not in _SCHEMAS:
            raise
    _forget_torchvision()
    import torch

    for name, schema in _SCHEMAS.items():
        if not hasattr(torch.ops.torchvision, name):
            torch.library.define(f"torchvision::{name}", schema)
    _applied = True
    try:
        return importlib.import_module("torchvision")
    except Exception:
        _forget_torchvision()
        raise


def shim_applied() -> bool:
    """True when :func:`import_torchvision` had to define torchvision's op schemas itself."""
    return _applied


def _forget_torchvision() -> None:
    # A failed import leaves the submodules that did load (torchvision.extension ...) behind.
    for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[key]
