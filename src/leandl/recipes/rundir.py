"""The run directory: layout, the writer lock, summary files."""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from leandl.errors import TrainingError, UsageError
from leandl.serialization import atomic_write_text

__all__ = ["prepare_run_dir", "run_lock", "stage_dir_name", "write_json", "default_out_dir"]


def default_out_dir(name: str) -> Path:
    """``runs/<recipe name>-<UTC timestamp>`` (unique per second)."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-{stamp}"


def stage_dir_name(index: int, kind: str) -> str:
    """``01-train`` for the first stage of kind train."""
    return f"{index + 1:02d}-{kind}"


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Create ``out``; refuse to mix a new run into an old one unless told to."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory", fix="choose another --out")
    has_run = (out / "recipe.yaml").exists()
    if has_run and not resume and not overwrite:
        raise UsageError(f"{out} already holds a run",
                         fix="add --resume to continue it, --overwrite to start it again, or choose another --out")
    if resume and not has_run:
        raise UsageError(f"--resume: {out} holds no run to resume (no recipe.yaml)",
                         fix="check --out, or drop --resume to start a new run")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise TrainingError(f"cannot write to the run directory ({exc.strerror or exc})", where=str(out),
                            fix="choose a writable --out") from None


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out/.lock`` for the run; a second run is refused."""
    path = out / ".lock"
    fh = open(path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise TrainingError(f"another leandl run ({holder}) is writing to this run directory", where=str(out),
                            fix="wait for it to finish, or choose another --out") from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, indented, NaN as null."""
    from leandl.train.metrics_log import json_safe

    atomic_write_text(path, json.dumps(json_safe(data), indent=2) + "\n")
