"""Recipe-time checks shared by the early-exit techniques (not registered).

A technique class with a ``check_stage(kind, options, recipe, where)`` classmethod is asked by
the recipe loader whether it may run in a stage; the early-exit techniques need the multi-exit
model that only the ``exits`` stage builds, so anywhere else they are refused before training.
"""

from __future__ import annotations

from typing import Any

from leandl.errors import ConfigError

__all__ = ["ExitsOnly"]


class ExitsOnly:
    """Mixin: the technique may only appear in an ``exits`` stage's ``techniques``."""

    name: str

    @classmethod
    def check_stage(cls, kind: str, options: Any, recipe: Any, where: str) -> None:
        """Raise :class:`ConfigError` (naming ``where``) when ``kind`` is not ``exits``."""
        if kind != "exits":
            raise ConfigError(
                f"technique '{cls.name}' trains early exits, but stage kind '{kind}' has none "
                "(it needs the multi-exit model that an 'exits' stage attaches)",
                where=where, fix="move it to the techniques of a `kind: exits` stage")
