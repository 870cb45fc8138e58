"""README's measured table: every number comes from a committed result file (benchmarks/check_readme.py)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


check_readme = _load("check_readme")
rt = check_readme.rt


def test_every_readme_number_has_a_committed_source() -> None:
    problems = check_readme.check(rt.README.read_text())
    assert problems == [], "\n".join(problems)


def test_an_edited_number_is_caught() -> None:
    readme = rt.README.read_text()
    table = check_readme.table_of(readme)
    line = next(ln for ln in table.splitlines() if "Label noise" in ln)
    edited = line.replace("87.2", "88.2")
    assert edited != line
    problems = check_readme.check(readme.replace(line, edited))
    assert any("88.2" in p and "differs" in p for p in problems), problems


def test_a_number_without_a_source_is_caught(tmp_path) -> None:
    row = {"what": "swa ({n} seeds)", "result": "{d} points, 42 % faster",
           "values": {"n": rt.v(rt.R + "swa.json", "[method=swa&metric=test_accuracy_change].n", "d"),
                      "d": rt.v(rt.R + "swa.json", "[method=swa&metric=test_accuracy_change].mean", "+.3f")}}
    table, _ = rt.render([row], warn=False)
    readme = f"x\n{rt.START}\n{table}\n{rt.END}\n"
    problems = check_readme.check(readme, [row])
    assert len(problems) == 1 and "42 has no source" in problems[0], problems


def test_a_setting_must_be_in_its_field() -> None:
    row = {"what": "noise 30 % ({n} seeds)", "result": "CE {ce} %",
           "settings": {"30": (rt._LN, "[method=CE&metric=test_accuracy&noise=sym40].noise")},
           "values": {"n": rt.v(rt._LN, "[method=CE&metric=test_accuracy&noise=sym40].n", "d"), "ce": rt._ln("CE")}}
    table, _ = rt.render([row], warn=False)
    problems = check_readme.check(f"{rt.START}\n{table}\n{rt.END}", [row])
    assert len(problems) == 1 and "setting 30 is not in" in problems[0], problems


def test_value_paths_by_hand() -> None:
    data = {"rows": [{"method": "a [x]", "metric": "m", "mean": 0.25, "values": [0.9, 1.2, 0.8]},
                     {"method": "b", "metric": "m", "mean": 2.0}]}
    assert rt.resolve(data, "rows[method=a [x]&metric=m].mean") == 0.25
    assert rt.resolve(data, "rows[-1].mean") == 2.0
    with pytest.raises(rt.SourceError, match="matches 2 items"):
        rt.resolve(data, "rows[metric=m].mean")
    with pytest.raises(rt.SourceError, match="fails at 'nope'"):
        rt.resolve(data, "rows[0].nope")
    assert rt.fmt(0.25 * 100, ".1f") == "25.0"
    assert check_readme.numbers("W8A8 99.07 %, ResNet-56 b64 1.63x +- 0.03; 30/30 (ci95 -0.30 to +0.26).") == \
        ["99.07", "1.63", "0.03", "30", "30", "-0.30", "+0.26"]


def test_negative_and_null_results_are_listed() -> None:
    table = check_readme.table_of(rt.README.read_text())
    for needle in ("MAE 87.2 % (best)", "SCE", "0.46x median (0.50x mean)", "gradient equilibrium",
                   "one-for-all KD", "FitNet", "RKD", "DKD", "mutual learning", "BYOT", "SWA",
                   "random weights", "no bytes saved"):
        assert needle in table, needle
    assert len(re.findall(r"\*\*null/negative:\*\*", table)) >= 3


def test_a_row_whose_source_changed_shape_is_left_out_and_reported() -> None:
    good = {"what": "swa ({n} seeds)", "result": "ok",
            "values": {"n": rt.v(rt.R + "swa.json", "[method=swa&metric=test_accuracy_change].n", "d")}}
    gone = {"what": "renamed", "result": "{x}", "values": {"x": rt.v(rt.R + "swa.json", "[method=nope].mean")}}
    missing = {"what": "later", "result": "{x}", "values": {"x": rt.v(rt.R + "not-yet.json", "a")}}
    table, produced = rt.render([good, gone, missing], warn=False)
    assert table.count("\n") == 2 and "swa (3 seeds)" in table and len(produced) == 1
    problems = check_readme.check(f"{rt.START}\n{table}\n{rt.END}", [good, gone, missing])
    assert any("matches 0 items" in p for p in problems) and any("not-yet.json" in p for p in problems)
