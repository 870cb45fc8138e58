from __future__ import annotations

import pytest

import leandl
from leandl.checkpoint import load, read_meta
from leandl.nas.derive import CellNet
from tests_helpers import fast_recipe


def _recipe(**nas):
    return fast_recipe(model={"name": "mnist1d_cnn", "kwargs": {"width": 8}},
                       data={"name": "mnist1d", "batch_size": 64, "options": {"num_samples": 300}},
                       stages=[{"kind": "train", "epochs": 1},
                               {"kind": "nas", "epochs": 1, "search_epochs": 1, "search_width": 4,
                                "ops": ["none", "skip", "conv_3", "sep_conv_3"], **nas}],
                       measure={"latency": False, "energy": False})


@pytest.mark.parametrize("kd", [False, True])
def test_nas_stage_searches_within_the_incoming_models_macs_and_reloads(tmp_path, kd):
    summary = leandl.run(_recipe(kd=kd), out=tmp_path / "r")
    m = summary["stages"][1]["metrics"]
    assert m["searched_macs"] <= m["max_macs"]
    assert m["max_macs"] == summary["stages"][0]["metrics"]["macs"]
    assert m["search_seconds"] > 0 and m["genotype"]["nodes"] == 2
    meta = read_meta(tmp_path / "r" / "stages" / "02-nas" / "model")
    assert meta["spec"]["name"] == "nas_cellnet" and meta["spec"]["kwargs"]["genotype"] == m["genotype"]
    assert isinstance(load(tmp_path / "r" / "stages" / "02-nas" / "model"), CellNet)


def test_nas_stage_names_a_bad_op(tmp_path):
    with pytest.raises(Exception, match="conv_9"):
        leandl.run(_recipe(ops=["skip", "conv_9"]), out=tmp_path / "r")


def test_builtin_nas_recipe_loads():
    from leandl.recipes.loader import load_recipe

    rec = load_recipe("mnist1d-nas")
    assert [s.kind for s in rec.stages] == ["train", "nas"]


def test_resume_after_a_kill_in_retraining_reads_the_search_back(tmp_path):
    """A real SIGKILL after the nas stage's first retraining epoch, then ``--resume``: the search
    is not run again (the resumed process is armed to die if it saves a search) and the result
    equals an uninterrupted run's, weights bit for bit."""
    import json
    import os
    import signal
    import subprocess
    import sys

    import torch
    import yaml
    from safetensors.torch import load_file

    rec = _recipe(epochs=2)
    rec["defaults"]["optimizer"] = "sgd"
    path = tmp_path / "nas.yaml"
    path.write_text(yaml.safe_dump(rec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("LEANDL_CRASH_AT", None)

    def run(out, *extra, crash=None):
        e = dict(env, LEANDL_CRASH_AT=crash) if crash else env
        return subprocess.run([sys.executable, "-m", "leandl", "run", str(path), "--out", str(out), *extra],
                              env=e, capture_output=True, text=True, timeout=300)

    ref = run(tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]
    killed = run(tmp_path / "run", crash="atomic_dir.written@02-nas/resume")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = tmp_path / "run" / "stages" / "02-nas" / "search.json"
    assert json.loads(saved.read_text())["result"]["genotype"]["nodes"] == 2
    resumed = run(tmp_path / "run", "--resume", crash="nas.searched")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_file(tmp_path / "ref" / "stages" / "02-nas" / "model" / "model.safetensors")
    b = load_file(tmp_path / "run" / "stages" / "02-nas" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma = json.loads((tmp_path / "ref" / "stages" / "02-nas" / "summary.json").read_text())["metrics"]
    mb = json.loads((tmp_path / "run" / "stages" / "02-nas" / "summary.json").read_text())["metrics"]
    for key in ("genotype", "val_accuracy", "accuracy"):
        assert ma[key] == mb[key], key
    # the resumed stage reports the search the killed process ran (its own timing, not a new one)
    assert mb["search_seconds"] == json.loads(saved.read_text())["result"]["seconds"]
