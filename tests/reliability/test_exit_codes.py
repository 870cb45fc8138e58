"""Every interrupted or failed run exits non-zero with one line (issue 18, item 2).

Real signals (``os.kill``) to a real ``leandl`` subprocess, at the moment each case names:
while data loads, twice during training, in ``leandl profile``, during the last stage; and
``--nproc 2`` with every worker failing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests_helpers import fast_recipe

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _leandl(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "leandl", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert proc.poll() is None, f"leandl ended early: {proc.communicate()}"
        assert time.time() < deadline, "timed out waiting for leandl"
        time.sleep(0.01)


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler installed for ``sig`` (``SigCgt`` in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask >> (sig - 1) & 1)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert "Traceback" not in err and "bug in leandl" not in err, err
    return lines[-1]


def _recipe(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(fast_recipe(**changes)))
    return path


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_data_loads(tmp_path, sig, code) -> None:
    # about 200 MB of synthetic data: seconds of loading after recipe.yaml is written
    recipe = _recipe(tmp_path, data={"name": "synthetic", "options": {"shape": [32], "num_samples": 1_500_000}})
    out = tmp_path / "run"
    proc = _leandl("run", str(recipe), "--out", str(out))
    _wait_for(lambda: (out / "recipe.yaml").exists(), proc)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert signal.Signals(sig).name in _one_error_line(err)
    assert not (out / "summary.json").exists()


def test_double_sigint_during_training(tmp_path) -> None:
    recipe = _recipe(tmp_path, defaults={"epochs": 200, "optimizer": "adam", "lr": 0.003, "progress": False})
    out = tmp_path / "run"
    proc = _leandl("run", str(recipe), "--out", str(out))
    _wait_for(lambda: (out / "stages" / "01-train").is_dir(), proc)
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "SIGINT" in _one_error_line(err)


def test_sigint_in_profile() -> None:
    proc = _leandl("profile", "mlp", "--input-shape", "1,64", "--repeats", "100000", "--warmup", "10000")
    # inside the command once it handles SIGTERM itself (Python alone only catches SIGINT)
    _wait_for(lambda: _catches(proc.pid, signal.SIGTERM), proc)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "leandl profile was stopped by SIGINT" in _one_error_line(err)


def test_sigterm_during_the_last_stage(tmp_path) -> None:
    # one training stage, then seconds of latency measuring (the same stage, after training)
    recipe = _recipe(tmp_path, defaults={"epochs": 1, "optimizer": "adam", "lr": 0.003, "progress": False},
                     measure={"batch_sizes": [1], "repeats": 100_000, "warmup": 0, "energy": False})
    out = tmp_path / "run"
    proc = _leandl("run", str(recipe), "--out", str(out))
    _wait_for(lambda: (out / "stages" / "01-train" / "resume").is_dir(), proc)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert "SIGTERM" in _one_error_line(err)
    assert not (out / "summary.json").exists()
    assert (out / "stages" / "01-train" / "model" / "model.safetensors").exists()  # the trained model is kept


def test_nproc_every_worker_fails(tmp_path) -> None:
    recipe = _recipe(tmp_path, data={"name": "imagefolder", "root": str(tmp_path / "no-such-folder")})
    res = subprocess.run([sys.executable, "-m", "leandl", "run", str(recipe), "--out", str(tmp_path / "run"),
                          "--nproc", "2"], env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0, res.stderr
    assert "--nproc 2 failed" in res.stderr.strip().splitlines()[-1], res.stderr


def test_sigterm_to_nproc_run_reaches_the_workers(tmp_path) -> None:
    recipe = _recipe(tmp_path, defaults={"epochs": 200, "optimizer": "adam", "lr": 0.003, "progress": False})
    out = tmp_path / "run"
    proc = _leandl("run", str(recipe), "--out", str(out), "--nproc", "2")
    _wait_for(lambda: (out / "stages" / "01-train" / "resume").is_dir(), proc, seconds=240)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("error: leandl run --nproc 2 was stopped by SIGTERM"), err
    assert "no checkpoint directory" not in err
