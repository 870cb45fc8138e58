"""Run a recipe: stages in order, each measured, checkpointed and summarised.

``run(recipe, out=DIR)`` writes the run directory described in DESIGN.md::

    DIR/recipe.yaml       the resolved recipe
    DIR/metrics.jsonl     one JSON object per logged step / epoch / stage event
    DIR/stages/NN-KIND/   model/ (checkpoint), summary.json, resume/ (while training)
    DIR/summary.json      per stage: accuracy and every measured cost, with units

A completed stage (its ``summary.json`` exists) is skipped on ``--resume`` and its checkpoint
loaded; an interrupted training stage continues from its resume state.

Reliability (docs/reliability.md): ``--overwrite`` removes the old run's files before anything is
written; ``recipe.yaml`` is written atomically with its sha256 in ``run.json`` and checked on
``--resume``; leftovers of a crash (temporary and ``.old`` directories) are tidied under the run
lock; a stop signal at any point ends the run with a non-zero exit and one line; a failed write
(disk full) is a :class:`~leandl.errors.TrainingError` naming the directory; every value is
checked before any training starts; no checkpoint with non-finite weights is written.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from leandl.recipes.context import RunContext
from leandl.recipes.dist import DistInfo, dist_info, finish_dist
from leandl.recipes.loader import load_recipe, recipe_to_dict, stage_options
from leandl.recipes.measure_stage import measure_stage
from leandl.recipes.preflight import check_device
from leandl.errors import ConfigError, LeandlError, TrainingError
from leandl.recipes.rundir import (
    check_recipe,
    clear_run,
    default_out_dir,
    prepare_run_dir,
    run_lock,
    stage_dir_name,
    write_json,
    write_recipe,
)
from leandl.recipes.schema import MAX_SEED, Recipe
from leandl.registry import STAGES
from leandl.serialization import as_os_error, clean_stale, crash_point
from leandl.train.metrics_log import MetricsLogger
from leandl.train.signals import STOP_SIGNALS, TrainingInterrupted, stop_immediately

__all__ = ["run", "build_initial_model", "UNITS"]

UNITS = {"accuracy": "fraction in [0, 1]", "params": "count", "macs": "multiply-accumulates per sample",
         "flops": "2 x MACs per sample", "size_bytes": "bytes (safetensors weights)",
         "latency_ms": "milliseconds per batch (median), keyed by batch size",
         "train_seconds": "seconds of wall time", "energy_j": "joules per sample"}


def build_initial_model(recipe: Recipe, data: Any) -> torch.nn.Module:
    """The recipe's starting model: from the registry (sized to the data) or a checkpoint."""
    from leandl.checkpoint import load
    from leandl.models import create_model

    cfg = recipe.model
    if cfg.checkpoint is not None:
        return load(cfg.checkpoint, trust=cfg.trust)
    kwargs = {"num_classes": data.num_classes, "input_shape": list(data.input_shape), **cfg.kwargs}
    torch.manual_seed(recipe.seed)
    return create_model(cfg.name, trust=cfg.trust, **kwargs)  # library downloads only with model.trust


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _load_data(recipe: Recipe) -> Any:
    from leandl.data import load_data

    d = recipe.data
    bundle = load_data(d.name, root=d.root, seed=recipe.seed, **d.options)
    if d.noise is not None:
        from leandl.data.noise import apply_noise

        bundle = apply_noise(bundle, d.noise)
    return bundle


def run(recipe: str | Path | dict[str, Any] | Recipe, out: str | Path | None = None, *,
        overrides: list[str] | None = None, resume: bool = False, overwrite: bool = False,
        seed: int | None = None) -> dict[str, Any]:
    """Run a recipe and return its summary (also written to ``out/summary.json``).

    Args:
        recipe: a YAML path, a built-in name, a mapping, or a :class:`Recipe`.
        out: the run directory (default ``runs/<name>-<timestamp>``).
        overrides: ``a.b=value`` strings applied to the resolved recipe.
        resume: continue the run in ``out``.
        overwrite: reuse a directory that already holds a run.
        seed: override the recipe's seed.
    """
    dist = dist_info()
    if resume and out is not None and not isinstance(recipe, Recipe) and (Path(out) / "recipe.yaml").exists():
        check_recipe(Path(out))
        recipe = str(Path(out) / "recipe.yaml")
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, overrides)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"the seed must be an integer in [0, {MAX_SEED}], got {seed!r}", where="--seed")
        rec = rec.model_copy(update={"seed": seed})
    if dist.device is None:
        check_device(rec)
    out_dir = Path(out) if out is not None else default_out_dir(rec.name)
    out_dir = dist.broadcast_path(out_dir)
    if dist.is_main:
        prepare_run_dir(out_dir, resume, overwrite)
    dist.barrier()
    try:
        if dist.is_main:
            with run_lock(out_dir):
                if overwrite and not resume:
                    clear_run(out_dir)
                clean_stale(out_dir)
                return _run_locked(rec, out_dir, resume, dist)
        return _run_locked(rec, out_dir, resume, dist)
    finally:
        finish_dist(dist)


def _write_failed(exc: BaseException, out_dir: Path) -> TrainingError | None:
    """A :class:`TrainingError` for a failed write (disk full, read-only ...), else None."""
    err = as_os_error(exc)
    if err is None or isinstance(exc, LeandlError):
        return None
    where = getattr(err, "filename", None) or str(out_dir)
    return TrainingError(f"could not write the run's files ({err.strerror or err})", where=str(where),
                         fix="free disk space or make the run directory writable, then continue with --resume; "
                             "every stage completed before is intact")


def _run_locked(rec: Recipe, out_dir: Path, resume: bool, dist: DistInfo) -> dict[str, Any]:
    try:
        return _run_stages(rec, out_dir, resume, dist)
    except Exception as exc:
        failed = _write_failed(exc, out_dir)
        if failed is None:
            raise
        raise failed from exc


def _run_stages(rec: Recipe, out_dir: Path, resume: bool, dist: DistInfo) -> dict[str, Any]:
    import yaml

    from leandl.recipes.preflight import build_model_checked, preflight

    t0 = time.perf_counter()
    if dist.is_main:
        write_recipe(out_dir, yaml.safe_dump(recipe_to_dict(rec), sort_keys=False))
    logger = MetricsLogger(out_dir / "metrics.jsonl", enabled=dist.is_main)
    device = dist.device or _device(rec.device)
    with stop_immediately():  # nothing to save yet: a signal stops at once, with a message
        data = _load_data(rec)
        preflight(rec, data)
        model = build_model_checked(lambda: build_initial_model(rec, data), rec).to(device)
        ctx = RunContext(recipe=rec, out_dir=out_dir, data=data, model=model, device=device, logger=logger,
                         resume=resume, rank=dist.rank, world_size=dist.world_size)
    logger.log({"event": "run_start", "recipe": rec.name, "resume": resume, "world_size": dist.world_size})
    with STOP_SIGNALS:
        for i, entry in enumerate(rec.stages):
            if STOP_SIGNALS.requested:
                raise TrainingInterrupted(STOP_SIGNALS.name, -1, None, before=stage_dir_name(i, entry.kind))
            _run_stage(ctx, i, entry.kind)
        if STOP_SIGNALS.requested:  # during the last stage: saved, but the run did not finish
            raise TrainingInterrupted(STOP_SIGNALS.name, -1, None, before="")
        summary = _summary(rec, ctx, time.perf_counter() - t0)
        if dist.is_main:
            crash_point("run.summary")
            write_json(out_dir / "summary.json", summary)
            crash_point("run.report")
            _write_report(out_dir)
            crash_point("run.reported")
        logger.log({"event": "run_end", "seconds": summary["total_seconds"]})
    if STOP_SIGNALS.requested:  # while the report was written
        raise TrainingInterrupted(STOP_SIGNALS.name, -1, None, before="")
    return summary


def _run_stage(ctx: RunContext, index: int, kind: str) -> None:
    from leandl.checkpoint import load, save

    name = stage_dir_name(index, kind)
    ctx.stage_index, ctx.stage_name = index, name
    ctx.stage_dir = ctx.out_dir / "stages" / name
    done = ctx.stage_dir / "summary.json"
    if ctx.resume and done.exists():
        info = json.loads(done.read_text())
        ctx.model = load(ctx.stage_dir / "model", trust=ctx.recipe.model.trust).to(ctx.device)
        ctx.artifacts.update(info.get("artifacts", {}))
        ctx.summaries.append(info)
        ctx.logger.log({"event": "stage_skipped", "stage": name, "reason": "completed before resume"})
        return
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    stage = STAGES.get(kind)(stage_options(ctx.recipe, index))
    ctx.logger.log({"event": "stage_start", "stage": name})
    crash_point("stage.start", name)
    t0 = time.perf_counter()
    result = stage.run(ctx)
    seconds = time.perf_counter() - t0
    crash_point("stage.ran", name)
    ctx.model = result.model
    ctx.artifacts.update(result.artifacts)
    metrics = dict(result.metrics)
    metrics.setdefault("train_seconds", seconds if stage.trains else 0.0)
    metrics["stage_seconds"] = seconds
    if ctx.is_main:
        _check_finite(result.model, name)
    if result.measure and ctx.is_main:
        try:
            with STOP_SIGNALS.immediate():  # measuring is redone on --resume: stop at once
                measured = measure_stage(ctx, result.model)
        except (Exception, KeyboardInterrupt) as exc:
            # keep what the stage produced; --resume measures it again
            save(result.model, ctx.stage_dir / "model", metrics=metrics)
            if isinstance(exc, LeandlError | KeyboardInterrupt) or as_os_error(exc) is not None:
                raise
            raise TrainingError(f"measuring stage {name} failed ({type(exc).__name__}: {exc})",
                                where=str(ctx.stage_dir / "model"),
                                fix="the stage's model is saved there; check the recipe's measure section, "
                                    "then continue with --resume") from exc
        for key, value in measured.items():
            metrics.setdefault(key, value)
    info = {"index": index, "kind": kind, "name": getattr(stage.options, "name", None) or kind, "dir": name,
            "metrics": metrics, "artifacts": result.artifacts}
    if ctx.is_main:
        crash_point("stage.measured", name)
        save(result.model, ctx.stage_dir / "model", metrics=metrics)
        crash_point("stage.saved", name)
        write_json(done, info)
    ctx.summaries.append(info)
    ctx.logger.log({"event": "stage_end", "stage": name, "metrics": metrics})


def _check_finite(model: torch.nn.Module, stage: str) -> None:
    """Refuse to checkpoint a model whose weights or buffers hold NaN or inf."""
    from leandl.train.trainer import non_finite_tensors

    bad = non_finite_tensors(model)
    if bad:
        raise TrainingError(f"stage {stage} produced non-finite values in {', '.join(bad[:5])}"
                            f"{' ...' if len(bad) > 5 else ''}; no checkpoint of it was written",
                            fix="lower the learning rate or add grad_clip, then continue with --resume")


def _summary(rec: Recipe, ctx: RunContext, seconds: float) -> dict[str, Any]:
    import leandl
    from leandl.report.outline import final_stage, stage_outline

    stages = [{k: s[k] for k in ("index", "kind", "name", "dir", "metrics")} for s in ctx.summaries]
    return {
        "recipe": rec.name, "out_dir": str(ctx.out_dir), "seed": rec.seed, "device": str(ctx.device), "world_size": ctx.world_size,
        "threads": torch.get_num_threads(), "total_seconds": seconds,
        "versions": {"leandl": leandl.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "machine": platform.machine(), "units": UNITS,
        "stages": stages,
        # what each stage produced, its key number and its costs relative to the first stage
        "outline": stage_outline(stages), "result": final_stage(stages),
        "report": str(Path(ctx.out_dir) / "report.html"),
    }


def _write_report(out_dir: Path) -> None:
    """Write report.md / report.html when the report package is available."""
    try:
        from leandl.report import write_report
    except ImportError:
        return
    try:
        write_report(out_dir)
    except Exception as exc:  # the run's results are saved; a broken plot must not fail the run
        import warnings

        warnings.warn(f"report not written ({type(exc).__name__}: {exc}); run `leandl report {out_dir}`",
                      stacklevel=2)
