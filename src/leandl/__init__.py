"""leandl: resource-efficient deep learning, measured.

The top-level API mirrors the CLI and is imported lazily, so ``import leandl`` stays cheap
(no CUDA initialisation, no YAML, no plotting, no ONNX).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": ("leandl.models", "create_model"),
    "list_models": ("leandl.models", "list_models"),
    "profile": ("leandl.measure", "profile"),
    "save": ("leandl.checkpoint", "save"),
    "load": ("leandl.checkpoint", "load"),
    "run": ("leandl.recipes.runner", "run"),
    "prune_": ("leandl.prune.api", "prune_"),
    "LeandlError": ("leandl.errors", "LeandlError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'leandl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
