"""benchmarks/run_all.py on a tiny fake benchmark directory (no real benchmark runs)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]

_OK = '''
import argparse, json, pathlib
p = argparse.ArgumentParser()
p.add_argument("--out", type=pathlib.Path)
p.add_argument("--quick", action="store_true")
a = p.parse_args()
rows = [{"method": m, "metric": "accuracy", "mean": v, "std": 0.01, "n": 3, "units": "fraction",
         "threads": 2, "batch_size": 64, "model": "tiny", "quick": a.quick,
         "versions": {"torch": "9.9"}, "date": "2030-01-02T03:04:05+00:00"}
        for m, v in (("base", 0.8123456), ("ours", 0.9345678))]
rows[1]["batch_size"] = 128
a.out.write_text(json.dumps(rows))
print("done")
'''
_FAIL = 'import sys\nprint("line one")\nprint("boom: model exploded", file=sys.stderr)\nsys.exit(3)\n'
_NO_JSON = 'print("forgot to write")\n'
_SLOW = 'import time\ntime.sleep(30)\n'


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    d = tmp_path / "benchmarks"
    d.mkdir()
    for name, body in (("good", _OK), ("bad", _FAIL), ("silent", _NO_JSON), ("slow", _SLOW),
                       ("_common", "raise SystemExit(9)\n")):
        (d / f"{name}.py").write_text(body)
    (d / "run_all.py").write_text("raise SystemExit(9)\n")
    return d


def test_run_all_tables_from_json_failures_listed(bench_dir: Path) -> None:
    run_all = _load()
    out = bench_dir / "RESULTS.md"
    rc = run_all.main(["--bench-dir", str(bench_dir), "--quick", "--timeout", "5", "--output", str(out)])
    assert rc == 1  # some benchmarks failed
    md = out.read_text()
    good = md.split("## good")[1].split("## ")[0]
    # numbers come from the JSON rows; varying key (batch_size) is a column, constant ones are settings
    assert "| method | metric | mean | std | n | units | batch_size |" in good
    assert "| base | accuracy | 0.8123 | 0.01 | 3 | fraction | 64 |" in good
    assert "| ours | accuracy | 0.9346 | 0.01 | 3 | fraction | 128 |" in good
    assert "- threads: 2" in good and "- date: 2030-01-02T03:04:05+00:00" in good and '"torch":"9.9"' in good
    assert "model=tiny" in good and "quick=True" in good and "--quick" in good
    assert "**FAILED**: exit code 3" in md and "boom: model exploded" in md
    assert "no fresh result file" in md and "timed out after 5 s" in md
    assert "machine: " in md and "logical cores" in md
    # scripts starting with _ and run_all itself are not benchmarks
    assert "## _common" not in md and "## run_all" not in md
    assert json.loads((bench_dir / "results" / "good.json").read_text())[0]["method"] == "base"


def test_only_and_collect_only(bench_dir: Path) -> None:
    run_all = _load()
    out = bench_dir / "R.md"
    assert run_all.main(["--bench-dir", str(bench_dir), "--only", "good", "--output", str(out)]) == 0
    assert "## bad" not in out.read_text()
    assert run_all.main(["--bench-dir", str(bench_dir), "--only", "good,silent", "--collect-only",
                         "--output", str(out)]) == 1
    md = out.read_text()
    assert "status: collected" in md and "| base | accuracy | 0.8123 |" in md and "not run (--collect-only)" in md
    with pytest.raises(SystemExit, match="no benchmark named"):
        run_all.main(["--bench-dir", str(bench_dir), "--only", "nope"])
