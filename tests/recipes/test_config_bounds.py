"""Every recipe value is checked before any training starts (issue 18, item 10), and YAML
loading is bounded: alias bombs, deep nesting, huge files (item 8)."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
import yaml

import leandl
from leandl.errors import ConfigError
from leandl.recipes.loader import load_recipe
from leandl.recipes.preflight import preflight
from tests_helpers import fast_recipe

BAD = [
    ("measure", "batch_sizes", [0]),
    ("measure", "batch_sizes", [-4]),
    ("measure", "batch_sizes", [10**9]),
    ("measure", "batch_sizes", []),
    ("measure", "threads", 10**9),
    ("measure", "warmup", 10**9),
    ("measure", "repeats", 10**9),
    ("defaults", "lr", float("inf")),
    ("defaults", "betas", [2.0, 3.0]),
    ("defaults", "milestones", [5.0]),
    ("defaults", "milestones", [0.75, 0.5]),
    ("defaults", "warmup_epochs", float("inf")),
    ("defaults", "gamma", float("inf")),
    ("defaults", "weight_decay", float("nan")),
    ("defaults", "grad_clip", float("inf")),
    ("data", "batch_size", 10**9),
    ("data", "eval_batch_size", 10**9),
    ("data", "num_workers", 10**6),
    (None, "seed", -1),
    (None, "seed", 2**70),
    (None, "device", "banana"),
    (None, "name", "../../etc"),
]
BAD_STAGES = [
    {"kind": "bench", "batch_sizes": [10**9]},
    {"kind": "bench", "threads": [0]},
    {"kind": "export", "opset": 10**6},
    {"kind": "exits", "hidden": 10**9},
    {"kind": "exits", "budgets": [-1.0]},
    {"kind": "mixed_precision", "candidates": [0]},
    {"kind": "train", "lr": float("inf")},
    {"kind": "train", "milestones": [0.7, 0.2]},
]


def _with(section, key, value):
    r = fast_recipe()
    if section is None:
        r[key] = value
    else:
        r[section] = {**r[section], key: value}
    return r


@pytest.mark.parametrize("section, key, value", BAD, ids=[f"{s}.{k}={v!r}"[:40] for s, k, v in BAD])
def test_bad_value_is_a_config_error_naming_the_field(section, key, value):
    with pytest.raises(ConfigError) as info:
        load_recipe(_with(section, key, value))
    assert key in str(info.value)


@pytest.mark.parametrize("stage", BAD_STAGES, ids=[str(s)[:40] for s in BAD_STAGES])
def test_bad_stage_option_is_a_config_error(stage):
    r = fast_recipe(stages=[{"kind": "train"}, stage])
    with pytest.raises(ConfigError, match=r"stages\[1\]"):
        load_recipe(r)


def test_bad_measure_value_fails_before_training(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="batch_sizes"):
        leandl.run(_with("measure", "batch_sizes", [10**9]), out=out)
    assert not out.exists()  # refused before the run directory, let alone a training stage


@pytest.mark.parametrize("seed", [-1, 2**70])
def test_bad_seed_argument_refused(tmp_path, seed):
    with pytest.raises(ConfigError, match="--seed"):
        leandl.run(fast_recipe(), out=tmp_path / "run", seed=seed)
    assert not (tmp_path / "run").exists()


def test_preflight_refuses_measure_batches_that_cannot_fit():
    r = load_recipe(_with("measure", "batch_sizes", [1, 65536]))
    with pytest.raises(ConfigError, match=r"measure\.batch_sizes\[1\]"):
        preflight(r, SimpleNamespace(input_shape=(3, 224, 224)))
    preflight(r, SimpleNamespace(input_shape=(1, 8, 8)))  # 16 MB: fine


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_gpu_refused_before_the_run_directory(tmp_path):
    with pytest.raises(ConfigError, match="no CUDA"):
        leandl.run(_with(None, "device", "cuda"), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bad_model_kwargs_refused_before_training(tmp_path):
    r = fast_recipe(model={"name": "digits_cnn", "kwargs": {"width": -1}})
    with pytest.raises(ConfigError, match="model.kwargs"):
        leandl.run(r, out=tmp_path / "run")
    assert not (tmp_path / "run" / "stages").exists()


# ------------------------------------------------------------------ hostile YAML (item 8)
def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_refused_quickly_naming_the_file(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())  # under 1 KB, 9**9 = 387 million strings when expanded
    assert path.stat().st_size < 1024
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="bomb.yaml.*expands"):
        load_recipe(path)
    assert time.perf_counter() - t0 < 5


def test_alias_bomb_in_set_refused():
    with pytest.raises(ConfigError, match="expands"):
        load_recipe(fast_recipe(), overrides=["name=" + _bomb().replace("\n", "\n")])


def test_deep_nesting_refused_naming_the_file(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match="deep.yaml.*nests deeper"):
        load_recipe(path)


def test_recursive_alias_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("name: &n [1, *n]\n")
    with pytest.raises(ConfigError, match="refers to itself"):
        load_recipe(path)


def test_anchors_in_a_normal_recipe_still_work(tmp_path):
    r = fast_recipe()
    text = yaml.safe_dump(r).replace("defaults:", "defaults: &d") + "\n"
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    assert load_recipe(path).name == "tiny"


@pytest.mark.slow
def test_cli_alias_bomb_exits_2_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    res = subprocess.run([sys.executable, "-m", "leandl", "run", str(path), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "bomb.yaml" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
