"""Crash suite (issue 18): SIGKILL at 31 named points of a 10-stage run, then ``--resume``.

A real ``leandl run`` subprocess runs a recipe with every committed stage kind (train, prune,
retrain, mixed_precision, quantize, export, bench, distill, compare, exits) on digits in a few
seconds. ``LEANDL_CRASH_AT=POINT[@TARGET][:N]`` (see :func:`leandl.serialization.crash_point`)
makes the process send itself a real ``SIGKILL`` at a named point: between the steps of every
atomic write (temporary file half written, written, fsynced, old copy moved aside, renamed),
half-way through a safetensors file, between a checkpoint's weights and its ``leandl.json``,
around each stage, during ``run.json`` / ``recipe.yaml`` / ``summary.json`` and around the
report. Each kill is checked to be a kill (exit by signal 9), and the run is continued the way
a user would (``--resume``, or the same command when the kill came before ``recipe.yaml``
existed). The resumed run must end with the uninterrupted run's weights, bit for bit, and the
same metrics (wall-clock timings left out) in every stage.

To keep it fast the points are run as three chains (each kill resumed by the next killed
process), and the chains that start later in the run begin from a copy of the reference run's
completed stages, exactly the state a kill after those stages leaves. The reference run and
the chains run two at a time (the suite's processes are single-threaded).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

RECIPE = """\
name: crash
seed: 0
model: {name: digits_cnn, kwargs: {width: 4}}
data: {name: digits, batch_size: 128}
defaults: {epochs: 2, optimizer: sgd, lr: 0.05, progress: false}
measure: {batch_sizes: [1], repeats: 1, warmup: 0, latency: false, energy: false}
stages:
  - {kind: train}
  - {kind: prune, criterion: l1, target: {ratio: 0.5}, scope: global, round_to: null}
  - {kind: retrain, init: scratch, epochs: 1}
  - {kind: mixed_precision, budget: 0.5, epochs: 1}
  - {kind: quantize, method: ptq, calibration_batches: 2}
  - {kind: export, format: onnx}
  - {kind: bench, backends: [eager], batch_sizes: [1], repeats: 2, warmup: 1}
  - {kind: distill, teacher: {stage: 0}, student: {name: digits_cnn, kwargs: {width: 4}}, epochs: 1}
  - kind: compare
    variants:
      - {name: ce, epochs: 1}
      - {name: ls, epochs: 1, techniques: [{name: label_smoothing, smoothing: 0.1}]}
  - {kind: exits, epochs: 1, budgets: [0.8], select_budget: 0.8, timing_rounds: 1}
"""
STAGES = ["01-train", "02-prune", "03-retrain", "04-mixed_precision", "05-quantize", "06-export", "07-bench",
          "08-distill", "09-compare", "10-exits"]

# (stages copied from the reference run first, kill points in the order the run reaches them)
CHAINS = {
    "start-train-prune-retrain-mixed": (0, [
        "atomic_text.partial@run.json",  # the recipe's hash half written: no run yet
        "atomic_text.synced@recipe.yaml",  # recipe.yaml fsynced under its temporary name
        "atomic_text.replaced@recipe.yaml",  # renamed, directory not yet fsynced
        "safetensors.partial@state.safetensors",  # the first resume state half written
        "atomic_dir.old_moved@01-train/resume",  # epoch 2's state: old copy moved aside, new not in place
        "checkpoint.weights@01-train/model",  # stage checkpoint: weights written, leandl.json not
        "stage.saved@01-train",  # checkpoint in place, stage summary.json not written
        "stage.ran@02-prune",  # pruned in memory, nothing saved
        "atomic_dir.renamed@02-prune/model",  # checkpoint renamed into place, parent not fsynced
        "atomic_text.partial@02-prune/summary.json",  # the stage's summary.json half written
        "atomic_dir.written@03-retrain/resume",  # resume state written, not fsynced
        "stage.measured@03-retrain",  # measured, checkpoint not written
        "atomic_dir.synced@04-mixed_precision/resume",  # fsynced, not renamed
        "stage.ran@04-mixed_precision",
    ]),
    "quantize-export-bench-distill": (4, [
        "stage.start@05-quantize",
        "stage.ran@05-quantize",  # int8 ONNX files written, checkpoint not
        "checkpoint.weights@05-quantize/model",
        "stage.ran@06-export",  # model.onnx written, checkpoint not
        "atomic_text.synced@06-export/summary.json",
        "stage.ran@07-bench",
        "atomic_dir.renamed@07-bench/model",
        "atomic_dir.renamed@08-distill/resume",
        "stage.saved@08-distill",
    ]),
    "compare-exits-summary-report": (8, [
        "atomic_dir.synced@ce/resume",  # the first compare variant's resume state
        "atomic_dir.written@ls/resume",  # the second variant's
        "stage.ran@09-compare",
        "stage.ran@10-exits",
        "run.summary",  # every stage done, summary.json not written
        "atomic_text.partial@seg/summary.json",  # the run's summary.json half written
        "run.report",  # summary written, report not started
        "run.reported",  # report written, run not ended
    ]),
}
TIMING = ("seconds", "latency", "energy", "throughput", "timing", "speedup", "bench", "wall", "_ms")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ENV.pop("LEANDL_CRASH_AT", None)


def _run(recipe: Path, out: Path, resume: bool, crash: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "leandl", "run", str(recipe), "--out", str(out)] + (["--resume"] if resume else [])
    env = dict(ENV, LEANDL_CRASH_AT=crash) if crash else ENV
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _chain(recipe: Path, ref: Path | None, out: Path, copied: int, points: list[str]) -> dict:
    """Kill a run at each point in turn, then resume it to the end; what happened at each step."""
    if copied:
        out.mkdir(parents=True)
        for name in ("recipe.yaml", "run.json"):
            shutil.copy2(ref / name, out / name)
        for name in STAGES[:copied]:
            shutil.copytree(ref / "stages" / name, out / "stages" / name)
    kills = []
    for point in points:
        res = _run(recipe, out, resume=(out / "recipe.yaml").exists(), crash=point)
        kills.append((point, res.returncode, res.stderr[-2000:]))
        if res.returncode != -signal.SIGKILL:
            break
    res = _run(recipe, out, resume=True)
    return {"kills": kills, "final": (res.returncode, res.stderr[-2000:]), "out": out}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The reference run and every chain, two processes at a time."""
    from concurrent.futures import ThreadPoolExecutor

    tmp = tmp_path_factory.mktemp("crash")
    recipe = tmp / "crash.yaml"
    recipe.write_text(RECIPE)
    ref = tmp / "ref"
    with ThreadPoolExecutor(max_workers=2) as pool:
        ref_run = pool.submit(_run, recipe, ref, False)
        fresh = [name for name, (copied, _) in CHAINS.items() if not copied]
        futures = {name: pool.submit(_chain, recipe, None, tmp / name / "seg", 0, CHAINS[name][1]) for name in fresh}
        res = ref_run.result()
        assert res.returncode == 0, res.stderr
        for name, (copied, points) in CHAINS.items():
            if copied:
                futures[name] = pool.submit(_chain, recipe, ref, tmp / name / "seg", copied, points)
        return ref, {name: f.result() for name, f in futures.items()}


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not any(t in k.lower() for t in TIMING)}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _assert_same_run(ref: Path, out: Path) -> None:
    for name in STAGES:
        a = load_file(str(ref / "stages" / name / "model" / "model.safetensors"))
        b = load_file(str(out / "stages" / name / "model" / "model.safetensors"))
        assert a.keys() == b.keys(), name
        for key in a:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), f"{name}: {key} differs"
        ma = json.loads((ref / "stages" / name / "summary.json").read_text())["metrics"]
        mb = json.loads((out / "stages" / name / "summary.json").read_text())["metrics"]
        assert _untimed(ma) == _untimed(mb), name
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (ref, out))
    for key in ("recipe", "seed", "stages"):
        assert _untimed(sa[key]) == _untimed(sb[key]), key
    assert (out / "report.md").is_file()


def _leftovers(out: Path) -> list[str]:
    return [str(p) for p in out.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


@pytest.mark.parametrize("chain", list(CHAINS))
def test_sigkill_at_every_point_then_resume_is_exact(runs, chain):
    ref, results = runs
    result = results[chain]
    for point, code, err in result["kills"]:
        assert code == -signal.SIGKILL, f"{point} was not reached (exit {code}): {err}"
    assert len(result["kills"]) == len(CHAINS[chain][1])
    code, err = result["final"]
    assert code == 0, err
    _assert_same_run(ref, result["out"])
    assert _leftovers(result["out"]) == []


def test_at_least_twenty_points_over_every_stage_kind():
    points = [p for _, chain in CHAINS.values() for p in chain]
    assert len(set(points)) == len(points) >= 20
    for name in STAGES:
        assert any(name in p or f"{name.split('-', 1)[1]}" in p for p in points), name


def test_crash_point_is_inert_without_the_variable(monkeypatch):
    from leandl.serialization import crash_point

    monkeypatch.delenv("LEANDL_CRASH_AT", raising=False)
    crash_point("stage.ran", "01-train")  # returns: no variable
    monkeypatch.setenv("LEANDL_CRASH_AT", "stage.ran@02-prune:2")
    crash_point("stage.ran", "01-train")  # another target
    crash_point("stage.ran", "02-prune")  # first of two: not yet
    crash_point("stage.start", "02-prune")  # another point
    # the process is still here; the second hit of the named point kills a real process
    code = ("from leandl.serialization import crash_point\n"
            "crash_point('stage.ran', '02-prune')\nprint('first', flush=True)\n"
            "crash_point('stage.ran', '02-prune')\nprint('second', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LEANDL_CRASH_AT": "stage.ran@02-prune:2"})
    assert proc.returncode == -signal.SIGKILL and proc.stdout.split() == ["first"]
