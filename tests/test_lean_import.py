from __future__ import annotations

import subprocess
import sys


def test_import_leandl_is_lean():
    code = ("import sys, leandl; bad = [m for m in ('matplotlib', 'onnx', 'yaml', 'onnxruntime', 'torch_pruning') "
            "if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_functions_are_typed():
    import ast
    import pathlib

    import leandl

    root = pathlib.Path(leandl.__file__).parent
    missing = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            fns = [node] if isinstance(node, ast.FunctionDef) else (
                [n for n in node.body if isinstance(n, ast.FunctionDef)] if isinstance(node, ast.ClassDef)
                and not node.name.startswith("_") else [])
            for fn in fns:
                if fn.name.startswith("_"):
                    continue
                args = [a for a in fn.args.args + fn.args.kwonlyargs if a.arg not in ("self", "cls")]
                if fn.returns is None or any(a.annotation is None for a in args):
                    missing.append(f"{path.relative_to(root)}:{fn.lineno} {fn.name}")
    assert not missing, "untyped public functions:\n" + "\n".join(missing)
