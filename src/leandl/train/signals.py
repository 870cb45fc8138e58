"""SIGTERM/SIGINT: finish the step, write a checkpoint, exit non-zero with one line of advice.

Two modes. While :data:`STOP_SIGNALS` is active (the runner holds it for the stages, the trainer
nests inside it) the first signal only sets a flag that the trainer checks after each step and
the runner after each stage; a second signal stops at once by raising :class:`HardStop` from the
handler. Inside :func:`stop_immediately` (data loading, model building, ``leandl profile``) the
first signal raises :class:`HardStop`. The CLI turns a :class:`HardStop` (and a plain
``KeyboardInterrupt``) into :func:`interrupted_error`: one line, exit code 130 (SIGINT) or
143 (SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from leandl.errors import TrainingError

__all__ = ["StopSignals", "TrainingInterrupted", "STOP_SIGNALS", "HardStop", "stop_immediately",
           "interrupted_error", "exit_code_for"]


def exit_code_for(signame: str) -> int:
    """The conventional exit code after a stop signal: 143 for SIGTERM, 130 otherwise."""
    return 143 if signame == "SIGTERM" else 130


class HardStop(KeyboardInterrupt):
    """Raised from a signal handler to stop at once (a second signal, or outside the stages).

    A ``KeyboardInterrupt`` subclass so that ``except Exception`` blocks do not swallow it.
    """

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


class TrainingInterrupted(TrainingError):
    """Raised after a stop signal once the resume checkpoint is written."""

    def __init__(self, signame: str, step: int, where: Path | None, before: str | None = None) -> None:
        self.signame = signame
        self.exit_code = exit_code_for(signame)
        if before == "":
            what = f"stopped by {signame} after the last stage; every stage is saved"
        elif before is not None:
            what = f"stopped by {signame} before stage {before}; every completed stage is saved"
        else:
            saved = f"a checkpoint was written to {where}" if where else "no checkpoint directory is configured"
            what = f"stopped by {signame} after step {step}; {saved}"
        super().__init__(
            what,
            fix="continue with the same command plus --resume",
        )


class StopSignals:
    """Context manager: while active, SIGTERM/SIGINT set ``requested`` instead of killing.

    A second signal raises :class:`HardStop` at once (a hard stop that still exits with a
    message). Outside the main thread it installs nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self.name = ""
        self._old: dict[int, Any] = {}
        self._depth = 0
        self._immediate = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested or self._immediate:
            self.requested, self.name = True, self.name or signal.Signals(signum).name
            raise HardStop(signal.Signals(signum).name)
        self.requested = True
        self.name = signal.Signals(signum).name

    @contextlib.contextmanager
    def immediate(self) -> Iterator[None]:
        """Inside an active context: the first signal raises :class:`HardStop` at once.

        For work that is cheap to redo and may be long (measuring a stage's model). A signal
        that already arrived raises on entry.
        """
        if self.requested:
            raise HardStop(self.name)
        old, self._immediate = self._immediate, True
        try:
            yield
        finally:
            self._immediate = old

    def __enter__(self) -> StopSignals:
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            self.requested, self.name = False, ""
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


# One per process: the runner holds it for the whole run, the trainer nests inside it.
STOP_SIGNALS = StopSignals()


@contextlib.contextmanager
def stop_immediately() -> Iterator[None]:
    """While active (main thread only), SIGTERM and SIGINT raise :class:`HardStop` at once.

    Used where there is nothing to save (loading data, building the model, profiling); inside
    an active :data:`STOP_SIGNALS` it changes nothing, so a stage keeps its graceful stop.
    """
    if threading.current_thread() is not threading.main_thread() or STOP_SIGNALS._depth > 0:
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise HardStop(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)


def interrupted_error(exc: BaseException, doing: str, fix: str) -> TrainingError:
    """The one-line error for a ``KeyboardInterrupt`` / :class:`HardStop` caught by a command.

    Args:
        exc: the interrupt.
        doing: what was interrupted, e.g. ``"leandl profile"``.
        fix: what the user can do now.

    Returns:
        A :class:`TrainingError` whose ``exit_code`` is 130 (SIGINT) or 143 (SIGTERM).
    """
    signame = getattr(exc, "signame", "SIGINT")
    err = TrainingError(f"{doing} was stopped by {signame}", fix=fix)
    err.exit_code = exit_code_for(signame)
    return err
