"""``leandl profile`` through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from leandl.cli.profile import parse_int_list, register
from leandl.errors import UsageError


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Root group so that ``profile`` is a sub-command."""

    register(app)
    return app


def test_parse_int_list_and_usage_error() -> None:
    assert parse_int_list("1,3,32,32", "--input-shape", "e.g.") == [1, 3, 32, 32]
    with pytest.raises(UsageError, match="--input-shape.*1,3,32,32"):
        parse_int_list("1,a,32", "--input-shape", "--input-shape 1,3,32,32", min_len=2)
    with pytest.raises(UsageError):
        parse_int_list("32", "--input-shape", "x", min_len=2)
    with pytest.raises(UsageError):
        parse_int_list("1,,3", "--batch-sizes", "x")
    assert parse_int_list("1x3x8x8", "--input-shape", "x") == [1, 3, 8, 8]


def test_bad_input_shape_is_usage_error() -> None:
    result = CliRunner().invoke(_app(), ["profile", "resnet20", "--input-shape", "1,3,x"])
    assert isinstance(result.exception, UsageError)
    assert "--input-shape" in str(result.exception)


def test_profile_resnet20_json() -> None:
    pytest.importorskip("leandl.models")
    from leandl.models import create_model  # noqa: F401  (skip cleanly while models land)

    args = ["profile", "resnet20", "--input-shape", "1,3,32,32", "--json", "--repeats", "2",
            "--warmup", "1", "--batch-sizes", "1,2", "--threads", "1"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert abs(data["params"] / 0.272e6 - 1) < 0.01
    assert abs(data["macs"] / 40.81e6 - 1) < 0.02
    assert data["flops"] == 2 * data["macs"]
    assert set(data["latency_ms"]) == {"1", "2"}
    assert data["energy_source"] in {"estimated", "rapl"} and data["energy_j"] > 0
    assert data["size_bytes"] > data["params"] * 4


def test_profile_table_output() -> None:
    pytest.importorskip("leandl.models")
    args = ["profile", "lenet5", "--input-shape", "1,1,28,28", "--repeats", "1", "--warmup", "0",
            "--per-layer"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "MACs per sample" in result.stdout and "ms" in result.stdout
    assert "estimated" in result.stdout or "rapl" in result.stdout
