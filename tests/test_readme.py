"""The README's own-model snippet runs as written (a new user copies it first)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_readme_own_model_snippet_runs(tmp_path) -> None:
    pytest.importorskip("transformers")
    (code,) = [b for b in _blocks() if "prune_(bert" in b]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        scope: dict = {}
        exec(compile("import torch\nimport leandl\n" + code, "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    report = scope["report"]
    assert abs(report.achieved["macs"] - 0.7) <= 0.02
    assert any(b < a for (a, b) in report.widths.values())
    assert (tmp_path / "ckpt" / "bert" / "leandl.json").is_file()
