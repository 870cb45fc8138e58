"""Fault matrix (issue 9): SIGTERM, SIGKILL at random points, failed writes, a concurrent run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import yaml
from safetensors.torch import load_file

from tests_helpers import fast_recipe

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    r = fast_recipe(defaults={"epochs": 5, "optimizer": "sgd", "lr": 0.05, "progress": False},
                    data={"name": "digits", "batch_size": 8}, measure={"latency": False, "energy": False})
    path = tmp / "r.yaml"
    path.write_text(yaml.safe_dump(r))
    ref = tmp / "ref"
    subprocess.run(_cmd(path, ref), check=True, env=ENV, capture_output=True)
    return path, _weights(ref)


def _cmd(recipe, out, *extra):
    return [sys.executable, "-m", "leandl", "run", str(recipe), "--out", str(out), *extra]


def _weights(out):
    return load_file(str(out / "stages/01-train/model/model.safetensors"))


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k].float() - b[k].float()).abs().max() <= 1e-6, k


def _wait_started(out, proc, seconds=120):
    deadline = time.time() + seconds
    while not (out / "metrics.jsonl").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)


def test_sigterm_checkpoints_and_resumes(setup, tmp_path):
    recipe, ref = setup
    out = tmp_path / "term"
    proc = subprocess.Popen(_cmd(recipe, out), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_started(out, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "--resume" in err and "Traceback" not in err
    res = subprocess.run(_cmd(recipe, out, "--resume"), env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    _same(_weights(out), ref)


@pytest.mark.parametrize("point", range(5))
def test_sigkill_at_random_points_then_resume(setup, tmp_path, point):
    recipe, ref = setup
    delay = random.Random(point).uniform(0.2, 3.5)
    out = tmp_path / f"kill{point}"
    proc = subprocess.Popen(_cmd(recipe, out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_started(out, proc)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if (out / "summary.json").exists():  # finished before the kill: nothing to resume
        _same(_weights(out), ref)
        return
    res = subprocess.run(_cmd(recipe, out, "--resume"), env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    _same(_weights(out), ref)


def test_unwritable_run_directory(setup):
    recipe, _ = setup
    res = subprocess.run(_cmd(recipe, "/proc/leandl-cannot-write"), env=ENV, capture_output=True, text=True)
    assert res.returncode != 0 and "cannot write to the run directory" in res.stderr
    assert "Traceback" not in res.stderr


def test_second_concurrent_run_refused(setup, tmp_path):
    recipe, _ = setup
    out = tmp_path / "busy"
    proc = subprocess.Popen(_cmd(recipe, out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_started(out, proc)
        res = subprocess.run(_cmd(recipe, out, "--overwrite"), env=ENV, capture_output=True, text=True)
        assert res.returncode != 0 and "another leandl run" in res.stderr, res.stderr
    finally:
        proc.kill()
        proc.wait()
