"""Acceptance (issue 7): 2-process gloo run vs 1-process run, same global batch and seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests_helpers import fast_recipe

pytestmark = pytest.mark.slow


def test_two_process_run_matches_single_process(tmp_path):
    recipe = fast_recipe(defaults={"epochs": 8, "optimizer": "adam", "lr": 0.003, "progress": False},
                         data={"name": "digits", "batch_size": 64})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    accs = {}
    for n in (1, 2):
        out = tmp_path / f"n{n}"
        res = subprocess.run([sys.executable, "-m", "leandl", "run", str(path), "--out", str(out),
                              "--nproc", str(n)], env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["world_size"] == n
        accs[n] = summary["stages"][0]["metrics"]["accuracy"]
    assert abs(accs[1] - accs[2]) <= 0.01, accs
    # exactly one run directory was written by the 2-process run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n1", "n2", "r.yaml"]
    assert len(list((tmp_path / "n2" / "stages").iterdir())) == 1


def test_pruning_inside_a_two_process_run_uses_identical_masks(tmp_path):
    recipe = fast_recipe(defaults={"epochs": 1, "optimizer": "adam", "lr": 0.003, "progress": False},
                         stages=[{"kind": "train"}, {"kind": "prune", "criterion": "l1", "target": {"macs": 0.5}},
                                 {"kind": "train", "epochs": 1}],
                         measure={"latency": False, "energy": False})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "leandl", "run", str(path), "--out", str(out), "--nproc", "2"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    prune = summary["stages"][1]["metrics"]
    assert prune["prune_masks_identical_across_ranks"] is True
    assert prune["macs_kept_fraction"] <= 0.53
    assert summary["stages"][2]["metrics"]["macs"] == summary["stages"][1]["metrics"]["macs"]
