"""leandl's own exception types.

Every error a user can cause is a :class:`LeandlError`: one paragraph that says what went wrong,
where (field, file, layer), and what to do. The CLI prints ``str(err)`` and exits with
``err.exit_code`` (2 for usage errors, 1 otherwise); tracebacks only with ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "LeandlError",
    "UsageError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "ModelError",
    "TrainingError",
    "closest",
    "unknown_name_message",
]


class LeandlError(Exception):
    """Base class: a clear, one-paragraph error a user can act on.

    Args:
        what: what went wrong.
        where: the field, file, layer or name concerned (optional).
        fix: what to do about it (optional).
    """

    exit_code: int = 1

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self._compose())

    def _compose(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.where:
            parts.insert(0, f"{self.where}:")
        if self.fix:
            parts.append(self.fix.rstrip(".") + ".")
        return " ".join(parts)


class UsageError(LeandlError):
    """Bad command-line arguments, recipe fields or names (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A recipe or configuration value is invalid (exit code 2)."""


class DataError(LeandlError):
    """A dataset is missing, malformed or cannot be read."""


class CheckpointError(LeandlError):
    """A checkpoint is missing, altered, untrusted or inconsistent."""


class ModelError(LeandlError):
    """A model cannot be built, traced, pruned or run as asked."""


class TrainingError(LeandlError):
    """Training cannot continue (non-finite loss, failed write, locked run directory)."""


def closest(name: str, options: Iterable[str]) -> str | None:
    """Return the option closest to ``name`` (difflib ratio >= 0.6), or ``None``."""
    matches = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_name_message(kind: str, name: str, options: Iterable[str]) -> str:
    """Compose "unknown technique 'x'; did you mean 'y'? Known: a, b, c"."""
    opts = sorted(options)
    guess = closest(name, opts)
    msg = f"unknown {kind} '{name}'"
    if guess:
        msg += f"; did you mean '{guess}'?"
    shown = ", ".join(opts[:40]) + (" ..." if len(opts) > 40 else "")
    return msg + f" Known {kind}s: {shown}"
