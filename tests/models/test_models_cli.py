"""``leandl models [PATTERN]`` prints names, descriptions, params and MACs."""

from __future__ import annotations

import pytest

from leandl.cli import main
from leandl.cli.models import count_params_macs, parse_shape


def test_models_command_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "resnet20"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "CIFAR ResNet-20" in out
    assert "0.272 M" in out and "40.813 M" in out  # params, MACs at 3x32x32


def test_models_command_at_other_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "mnist1d*", "--input-shape", "1,40"]) == 0
    assert "mnist1d_cnn" in capsys.readouterr().out
    assert main(["models", "digits_cnn", "--input-shape", "1,40"]) == 0  # 2-D model at 1-D: n/a
    assert "n/a" in capsys.readouterr().out


def test_models_command_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "zzz*"]) == 2
    assert "no model matches 'zzz*'" in capsys.readouterr().err
    assert main(["models", "--input-shape", "a,b"]) == 2


def test_helpers() -> None:
    assert parse_shape("3x32x32") == (3, 32, 32)
    # params: 288+64 + 18432+128 + 73728+256 + 1290; MACs: 18432 + 1179648 + 1179648 + 1280
    assert count_params_macs("digits_cnn", (1, 8, 8)) == (94186, 2379008)
