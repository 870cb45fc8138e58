"""``leandl list``: every registry kind prints its names (losses included)."""

from __future__ import annotations

from typer.testing import CliRunner

from leandl.cli import build_app
from leandl.registry import LOSSES


def test_list_losses_names_the_registered_loss_functions() -> None:
    names = LOSSES.names()
    for want in ("kd", "dkd", "fitnet", "attention", "rkd", "gce", "sce", "mae", "norm_loss"):
        assert want in names
    res = CliRunner().invoke(build_app(), ["list", "losses"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    for name in names:
        assert name in res.output
    assert callable(LOSSES.get("kd"))


def test_list_simplifications_are_named() -> None:
    res = CliRunner().invoke(build_app(), ["list", "techniques"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if "selective_layer_update" in ln)
    assert "simplified" in line
    rows = res.output.split("│ kd ")[1].split("\n")[0]
    assert "DLAD weighting simplified" in rows
