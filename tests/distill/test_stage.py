"""The distill stage: teacher from an earlier stage, fresh student, cache reported."""

from __future__ import annotations

import json

import pytest

from leandl.errors import ConfigError
from leandl.recipes.runner import run


def _recipe(teacher: dict) -> dict:
    return {
        "name": "tiny-distill", "seed": 0, "model": {"name": "digits_cnn", "kwargs": {"width": 4}},
        "data": {"name": "digits", "batch_size": 128},
        "defaults": {"epochs": 1, "optimizer": "adam", "lr": 0.003, "progress": False},
        "measure": {"batch_sizes": [1], "repeats": 1, "warmup": 0, "latency": False, "energy": False},
        "stages": [{"kind": "train"},
                   {"kind": "distill", "teacher": teacher, "student": {"name": "mlp", "kwargs": {"hidden": [16]}},
                    "loss": "kd", "loss_kwargs": {"temperature": 2.0}, "epochs": 2}],
    }


def test_distill_stage_runs_with_teacher_from_stage(tmp_path) -> None:  # noqa: ANN001
    summary = run(_recipe({"stage": 0}), out=tmp_path / "run")
    st = summary["stages"][1]["metrics"]
    assert st["teacher_cache"] is True and st["teacher_cache_hit_samples"] > 0
    meta = json.loads((tmp_path / "run" / "stages" / "02-distill" / "model" / "leandl.json").read_text())
    assert meta["spec"]["name"] == "mlp"


def test_distill_stage_rejects_later_stage(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="does not come before"):
        run(_recipe({"stage": 1}), out=tmp_path / "run")


def test_distill_stage_reaches_every_online_loss(tmp_path) -> None:  # noqa: ANN001
    """mutual (cohort), fusion (FFL cohort factory) and subclass (plain student) from a recipe."""
    peers = {"model": "digits_cnn", "k": 2, "model_kwargs": {"width": 4}}
    recipe = _recipe({"stage": 0})
    recipe["model"]["trust"] = True
    recipe["stages"] = [
        {"kind": "train", "epochs": 1},
        {"kind": "distill", "loss": "mutual", "epochs": 1,
         "student": {"name": "leandl.distill.mutual:build_cohort", "kwargs": peers}},
        {"kind": "distill", "loss": "fusion", "loss_kwargs": {"temperature": 3.0}, "epochs": 1,
         "student": {"name": "leandl.distill.fusion:build_fusion_cohort", "kwargs": peers}},
        {"kind": "distill", "loss": "subclass", "loss_kwargs": {"k": 2}, "epochs": 1,
         "student": {"name": "mlp", "kwargs": {"hidden": [16]}}},
    ]
    summary = run(recipe, out=tmp_path / "run")
    kinds = [s["metrics"].get("loss_terms", {}) for s in summary["stages"]]
    assert len(summary["stages"]) == 4, kinds
    for st in summary["stages"][1:4]:
        assert 0.0 <= st["metrics"]["accuracy"] <= 1.0
    meta = json.loads((tmp_path / "run" / "stages" / "03-distill" / "model" / "leandl.json").read_text())
    assert meta["spec"]["name"] == "leandl.distill.fusion:build_fusion_cohort"


def test_distill_stage_online_loss_refuses_a_teacher() -> None:
    from leandl.recipes.loader import parse_recipe

    recipe = _recipe({"stage": 0})
    recipe["stages"][1]["loss"] = "mutual"
    recipe["stages"][1]["loss_kwargs"] = {}
    with pytest.raises(ConfigError, match="online distillation"):
        parse_recipe(recipe)
    del recipe["stages"][1]["teacher"]
    parse_recipe(recipe)
    recipe["stages"][1]["loss"] = "kd"
    with pytest.raises(ConfigError, match="needs 'teacher'"):
        parse_recipe(recipe)


def test_distill_stage_builds_self_distillation_without_teacher() -> None:
    from types import SimpleNamespace

    from leandl.distill.self_distill import SelfDistillation
    from leandl.recipes.stages.distill import DistillOptions, build_distill_technique

    opts = DistillOptions(loss="self", loss_kwargs={"alpha": 0.2})
    tech = build_distill_technique(SimpleNamespace(stage_index=1), opts)
    assert isinstance(tech, SelfDistillation) and tech.alpha == 0.2
    with pytest.raises(ConfigError, match="alpha"):
        build_distill_technique(SimpleNamespace(stage_index=1), DistillOptions(loss="self", loss_kwargs={"alfa": 1}))
