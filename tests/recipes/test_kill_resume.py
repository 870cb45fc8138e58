"""Acceptance: SIGKILL mid-epoch, --resume, same final weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from safetensors.torch import load_file

from tests_helpers import fast_recipe

pytestmark = pytest.mark.slow


def _recipe(tmp_path):
    r = fast_recipe(defaults={"epochs": 6, "optimizer": "sgd", "lr": 0.05, "progress": False},
                    data={"name": "digits", "batch_size": 8})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


def _cmd(recipe, out, *extra):
    return [sys.executable, "-m", "leandl", "run", str(recipe), "--out", str(out), *extra]


def _epochs_logged(out):
    f = out / "metrics.jsonl"
    if not f.exists():
        return 0
    return sum(1 for line in f.read_text().splitlines() if json.loads(line).get("event") == "epoch")


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    recipe = _recipe(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref"
    subprocess.run(_cmd(recipe, ref), check=True, env=env, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(recipe, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _epochs_logged(out) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.15)  # now inside epoch 3
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists()
    res = subprocess.run(_cmd(recipe, out, "--resume"), env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    a = load_file(str(ref / "stages/01-train/model/model.safetensors"))
    b = load_file(str(out / "stages/01-train/model/model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k].float() - b[k].float()).abs().max() <= 1e-6, k
    events = [json.loads(line)["event"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "resumed" in events
