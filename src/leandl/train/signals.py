"""SIGTERM/SIGINT during training: finish the step, write a checkpoint, exit with advice."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from leandl.errors import TrainingError

__all__ = ["StopSignals", "TrainingInterrupted", "STOP_SIGNALS"]


class TrainingInterrupted(TrainingError):
    """Raised after a stop signal once the resume checkpoint is written."""

    def __init__(self, signame: str, step: int, where: Path | None, before: str | None = None) -> None:
        self.signame = signame
        self.exit_code = 143 if signame == "SIGTERM" else 130
        if before is not None:
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

    A second signal of the same kind restores the default behaviour (a hard stop). Outside the
    main thread it installs nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self.name = ""
        self._old: dict[int, Any] = {}
        self._depth = 0

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.requested = True
        self.name = signal.Signals(signum).name

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
