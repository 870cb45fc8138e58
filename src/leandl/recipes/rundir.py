"""The run directory: layout, the writer lock, summary files."""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from leandl.errors import ConfigError, TrainingError, UsageError
from leandl.serialization import atomic_write_text

__all__ = ["prepare_run_dir", "run_lock", "stage_dir_name", "write_json", "default_out_dir", "clear_run",
           "write_recipe", "check_recipe", "RUN_FILES"]

# What a run writes at the top of its directory; ``--overwrite`` removes exactly these.
RUN_FILES = ("recipe.yaml", "run.json", "metrics.jsonl", "summary.json", "stages", "report.md", "report.html",
             "report_files")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_out_dir(name: str, root: str | Path = "runs") -> Path:
    """``runs/<recipe name>-<UTC timestamp>`` (unique per second), always inside ``runs/``.

    The name is reduced to letters, digits, ``.``, ``_`` and ``-`` (anything else, path
    separators included, becomes ``-``; leading dots are dropped), so a recipe name such as
    ``../..`` or ``/etc`` can never place the run outside ``root``.
    """
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    slug = _UNSAFE.sub("-", name).lstrip(".-")[:80] or "run"
    out = Path(root) / f"{slug}-{stamp}"
    if out.parent != Path(root) or os.sep in out.name or out.name.startswith("."):
        raise ConfigError(f"recipe name {name!r} cannot name a run directory", where="name",
                          fix="use letters, digits, '.', '_' and '-', or pass --out")
    return out


def clear_run(out: Path) -> None:
    """Remove a previous run's files from ``out`` (``--overwrite``); other files are kept.

    Called with the run lock held, so no other run is writing there.
    """
    for name in RUN_FILES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_recipe(out: Path, text: str) -> None:
    """Write ``recipe.yaml`` (atomically) unless it already holds ``text``; record its hash.

    ``run.json`` (with the hash) is written first, then ``recipe.yaml``, both atomically, so a
    kill at any moment leaves either no run, or a recipe whose hash :func:`check_recipe` can verify.
    """
    path = out / "recipe.yaml"
    if path.is_file() and path.read_text() == text and (out / "run.json").is_file():
        return
    write_json(out / "run.json", {"recipe_sha256": _sha256(text)})
    atomic_write_text(path, text)


def check_recipe(out: Path) -> None:
    """Refuse to resume from a ``recipe.yaml`` that is not the one the run recorded.

    Raises:
        ConfigError: ``recipe.yaml`` differs from the hash in ``run.json`` (edited or damaged).
    """
    meta_path, path = out / "run.json", out / "recipe.yaml"
    if not meta_path.is_file():
        return  # a run from before run.json existed
    try:
        expected = json.loads(meta_path.read_text()).get("recipe_sha256")
    except (OSError, ValueError, AttributeError):
        expected = None
    if expected is None or _sha256(path.read_text()) != expected:
        raise ConfigError("recipe.yaml does not match the recipe this run started with (its sha256 differs from "
                          "run.json): it was edited or damaged, e.g. by a kill while it was written",
                          where=str(path), fix="restore it, or start the run again with --overwrite")


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
