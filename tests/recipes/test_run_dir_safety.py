"""Run directory safety (issue 18): --overwrite starts clean (item 3), recipe.yaml is written
atomically and verified on --resume (item 7), the recipe name cannot place a run outside runs/
(item 9), and a crash's temporary and ``.old`` directories are tidied (item 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

import leandl
import leandl.recipes.runner as runner
from leandl.errors import ConfigError
from leandl.recipes.rundir import default_out_dir
from tests_helpers import fast_recipe


def _recipe(**changes):
    base = {"defaults": {"epochs": 1, "optimizer": "adam", "lr": 0.003, "progress": False},
            "measure": {"batch_sizes": [1], "repeats": 1, "warmup": 0, "latency": False, "energy": False}}
    base.update(changes)
    return fast_recipe(**base)


def _weights(out: Path, stage: str = "01-train"):
    return load_file(str(out / "stages" / stage / "model" / "model.safetensors"))


@pytest.mark.slow
def test_overwrite_then_kill_then_resume_trains_the_new_run(tmp_path, monkeypatch):
    out = tmp_path / "run"
    leandl.run(_recipe(), out=out, seed=0)
    old = _weights(out)

    def killed(rec):  # the --overwrite run dies while its data loads
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_load_data", killed)
    with pytest.raises(KeyboardInterrupt):
        leandl.run(_recipe(), out=out, overwrite=True, seed=7)
    monkeypatch.undo()
    assert not (out / "stages").exists() and not (out / "summary.json").exists()
    summary = leandl.run(out / "recipe.yaml", out=out, resume=True)
    assert summary["seed"] == 7
    assert summary["stages"][0]["metrics"]["epochs_run"] == 1  # trained again, not skipped
    new = _weights(out)
    assert any(not (new[k] == old[k]).all() for k in old)


def test_resume_leaves_recipe_yaml_untouched(tmp_path):
    out = tmp_path / "run"
    leandl.run(_recipe(), out=out)
    before = os.stat(out / "recipe.yaml")
    leandl.run(_recipe(), out=out, resume=True)
    after = os.stat(out / "recipe.yaml")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.slow
def test_damaged_recipe_yaml_refused_on_resume(tmp_path):
    out = tmp_path / "run"
    leandl.run(_recipe(stages=[{"kind": "train"}, {"kind": "train"}]), out=out)
    # as if killed in stage 2 while a non-atomic rewrite had left only the first stage
    (out / "summary.json").unlink()
    (out / "stages" / "02-train" / "summary.json").unlink()
    data = yaml.safe_load((out / "recipe.yaml").read_text())
    data["stages"] = data["stages"][:1]
    (out / "recipe.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match="recipe.yaml does not match"):
        leandl.run("ignored.yaml", out=out, resume=True)
    assert not (out / "summary.json").exists()


@pytest.mark.parametrize("name", ["../..", "/tmp/evil", "a/../../b", ".hidden", "x\x00y", ""])
def test_recipe_name_cannot_leave_runs(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="name"):
        leandl.run(_recipe(name=name))
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["runs"])


@pytest.mark.parametrize("name", ["../..", "/abs/path", "a/b", "..", "\\..\\x"])
def test_default_out_dir_stays_in_runs(name):
    out = default_out_dir(name)
    assert out.parent == Path("runs") and ".." not in out.parts and not out.name.startswith(".")


@pytest.mark.slow
def test_crash_leftovers_are_tidied_on_resume(tmp_path):
    out = tmp_path / "run"
    leandl.run(_recipe(stages=[{"kind": "train"}, {"kind": "train"}]), out=out)
    stage1, stage2 = out / "stages" / "01-train", out / "stages" / "02-train"
    # what SIGKILL leaves: temporaries of atomic_dir / atomic_write_text, and the .old copy of a swap
    (stage1 / ".model.tmp-0a1b2c3d").mkdir()
    (stage1 / ".model.tmp-0a1b2c3d" / "model.safetensors").write_bytes(b"partial")
    (out / ".summary.json.tmp-deadbeef").write_text("{")
    (stage1 / "resume.old-12345678").mkdir()
    # a crash between the two renames of a swap: only the .old copy of stage 2's model is left
    (stage2 / "model").rename(stage2 / "model.old-87654321")
    (out / "summary.json").unlink()
    leandl.run(_recipe(stages=[{"kind": "train"}, {"kind": "train"}]), out=out, resume=True)
    left = [p.name for p in out.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert left == []
    assert (stage2 / "model" / "model.safetensors").exists()
