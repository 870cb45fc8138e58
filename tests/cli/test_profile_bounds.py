"""``leandl profile`` refuses sizes that cannot fit before building anything (issue 18, item 10)."""

from __future__ import annotations

import pytest

from leandl.cli import main


@pytest.mark.parametrize("args, where", [
    (["--input-shape", "1,3,100000,100000"], "--input-shape"),
    (["--input-shape", "1,64", "--batch-sizes", "1000000000"], "--batch-sizes"),
    (["--input-shape", "1,64", "--threads", "1000000000"], "--threads"),
    (["--input-shape", "1,64", "--repeats", "1000000000"], "--repeats"),
    (["--input-shape", "1,64", "--num-classes", "1000000000"], "--num-classes"),
])
def test_profile_bounds(capsys, args, where):
    assert main(["profile", "mlp", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and where in err and len(err.strip().splitlines()) == 1
