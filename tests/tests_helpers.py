"""Importable test helpers (conftest fixtures cannot be imported by name)."""

from __future__ import annotations

from typing import Any


def fast_recipe(**changes: Any) -> dict[str, Any]:
    """A digits recipe that trains in about a second and measures little."""
    recipe: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "model": {"name": "digits_cnn"},
        "data": {"name": "digits", "batch_size": 64},
        "defaults": {"epochs": 2, "optimizer": "adam", "lr": 0.003, "progress": False},
        "measure": {"batch_sizes": [1], "repeats": 2, "warmup": 1},
        "stages": [{"kind": "train"}],
    }
    recipe.update(changes)
    return recipe
