"""Acceptance: each bad input exits non-zero with a message naming problem and fix, no traceback."""

from __future__ import annotations

import subprocess
import sys

import yaml

from leandl.checkpoint import save
from leandl.models import create_model
from tests_helpers import fast_recipe


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "leandl", *args], capture_output=True, text=True, cwd=cwd)


def _write(tmp_path, recipe):
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(recipe))
    return str(p)


def _assert_clean(res, *needles):
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in res.stderr, (n, res.stderr)


def test_misspelt_key(tmp_path):
    res = _run("run", _write(tmp_path, fast_recipe(defaults={"epochz": 1})), "--out", str(tmp_path / "o"))
    _assert_clean(res, "epochz", "did you mean 'epochs'")
    assert res.returncode == 2


def test_wrong_type(tmp_path):
    res = _run("run", _write(tmp_path, fast_recipe(defaults={"epochs": "many"})), "--out", str(tmp_path / "o"))
    _assert_clean(res, "defaults.epochs", "integer")


def test_unknown_model_and_technique(tmp_path):
    res = _run("run", _write(tmp_path, fast_recipe(model={"name": "resnet65"})), "--out", str(tmp_path / "o"))
    _assert_clean(res, "resnet65", "did you mean")
    rec = fast_recipe(stages=[{"kind": "train", "techniques": [{"name": "swaa"}]}])
    res = _run("run", _write(tmp_path, rec), "--out", str(tmp_path / "o2"))
    _assert_clean(res, "swaa", "did you mean 'swa'")


def test_missing_dataset_directory(tmp_path):
    rec = fast_recipe(data={"name": "mnist", "root": str(tmp_path / "nowhere")})
    res = _run("run", _write(tmp_path, rec), "--out", str(tmp_path / "o"))
    _assert_clean(res, "nowhere", "leandl data download mnist")


def test_altered_checkpoint(tmp_path):
    ck = tmp_path / "ck"
    save(create_model("digits_cnn", num_classes=10, input_shape=[1, 8, 8]), ck)
    w = ck / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-3] ^= 0x55
    w.write_bytes(bytes(data))
    res = _run("eval", str(ck))
    _assert_clean(res, "altered", "restore the original")


def test_set_on_missing_path(tmp_path):
    res = _run("run", _write(tmp_path, fast_recipe()), "--out", str(tmp_path / "o"), "--set", "defaults.lrr=0.1")
    _assert_clean(res, "defaults.lrr", "did you mean 'lr'")
    assert res.returncode == 2
