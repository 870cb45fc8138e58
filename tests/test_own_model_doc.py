"""docs/own-model.md runs as written: every fenced block, in order, in one fresh folder.

``python`` blocks share one namespace (like a notebook), ``bash`` blocks run in a shell with the
venv's ``leandl`` on PATH, and a block preceded by ``<!-- file: NAME -->`` is written to NAME.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "own-model.md"
_BLOCK = re.compile(r"(?:<!-- file: (?P<file>[\w.-]+) -->\n)?```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)


def blocks(text: str) -> list[tuple[str, str | None, str]]:
    """``(language, file name or None, code)`` for each fenced block with a language."""
    return [(m["lang"], m["file"], m["code"]) for m in _BLOCK.finditer(text)]


def test_blocks_parse_and_cover_every_step() -> None:
    found = blocks(DOC.read_text())
    langs = [lang for lang, _, _ in found]
    assert {"python", "bash", "yaml"} <= set(langs)
    assert DOC.read_text().count("```") == 2 * len(found), "a fence without a language is not run"
    code = "\n".join(c for _, _, c in found)
    for api in ("leandl.profile", "leandl.prune_", "Trainer(", "ptq_onnx(", "bench_backends(",
                "leandl export", "leandl bench", "leandl run", "torchvision:resnet18", "timm.create_model",
                "transformers.Bert", "mynets:small_net", "imagefolder", "DataLoader(", "TensorSplit("):
        assert api in code, api


@pytest.mark.slow
def test_every_block_runs(tmp_path, monkeypatch) -> None:
    for lib in ("torchvision", "timm", "transformers", "onnxruntime", "sklearn"):
        pytest.importorskip(lib)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEANDL_QUIET", "1")
    scope: dict = {"__name__": "own_model_doc"}
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    sys_path = list(sys.path)
    try:
        for i, (lang, name, code) in enumerate(blocks(DOC.read_text())):
            if name:
                (tmp_path / name).write_text(code)
            elif lang == "python":
                exec(compile(code, f"{DOC.name} block {i}", "exec"), scope)
            elif lang == "bash":
                res = subprocess.run(["bash", "-euo", "pipefail", "-c", code], env=env, capture_output=True,
                                     text=True, timeout=300)
                assert res.returncode == 0, f"block {i} failed:\n{code}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    finally:
        sys.path[:] = sys_path
        sys.modules.pop("mynets", None)
    assert (tmp_path / "deploy" / "small" / "model.int8.onnx").is_file()
    assert (tmp_path / "deploy" / "cli" / "small.onnx").is_file()
    assert (tmp_path / "ckpt" / "resnet18" / "leandl.json").is_file()
    assert (tmp_path / "runs" / "my-net" / "report.html").is_file()
    assert scope["int8_acc"] > 0.8
