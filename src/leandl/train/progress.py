"""A rich progress bar for training: loss, accuracy, it/s, ETA (quiet when disabled)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["TrainProgress"]


class TrainProgress:
    """Context manager around a rich progress bar; every method is a no-op when disabled."""

    def __init__(self, enabled: bool, total_steps: int, description: str = "train") -> None:
        self.enabled = enabled
        self.total = total_steps
        self.description = description
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> TrainProgress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        console = Console(file=sys.stderr)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
            refresh_per_second=4,
        )
        self._progress.__enter__()
        self._task = self._progress.add_task(self.description, total=self.total, info="", rate="")
        return self

    def advance(self, steps: int, info: str = "") -> None:
        """Advance by ``steps`` and show ``info`` (e.g. ``loss 0.31 acc 0.92``)."""
        if self._progress is None:
            return
        task = self._progress.tasks[0]
        rate = f"{task.speed:.1f} it/s" if task.speed else ""
        self._progress.update(self._task, advance=steps, info=info, rate=rate)

    def set_completed(self, steps: int) -> None:
        """Jump to ``steps`` done (after a resume)."""
        if self._progress is not None:
            self._progress.update(self._task, completed=steps)

    def print(self, message: str) -> None:
        """Print a line above the bar (or to stderr when disabled)."""
        if self._progress is not None:
            self._progress.console.print(message)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
