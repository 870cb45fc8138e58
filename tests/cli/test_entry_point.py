"""The installed ``leandl`` console script: help, version and usage errors exit cleanly.

Each case runs twice where it can: with click importable, and with ``import click`` made to
fail (newer typer vendors click as ``typer._click`` and no longer installs it, so the error path
must not need it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import leandl
from leandl import cli

_TYPER_VENDORS_CLICK = importlib.util.find_spec("typer._click") is not None
_CLICK_INSTALLED = importlib.util.find_spec("click") is not None


def _leandl_script() -> str:
    beside = Path(sys.executable).with_name("leandl")
    found = str(beside) if beside.exists() else shutil.which("leandl")
    if found is None:
        pytest.skip("the leandl console script is not installed in this environment")
    return found


@pytest.fixture(params=["click-importable", "click-missing"])
def run_leandl(request, tmp_path):
    """Run the real ``leandl`` entry point in a subprocess, click importable or not."""
    env = {k: v for k, v in os.environ.items() if k != "LEANDL_DEBUG"}
    if request.param == "click-importable":
        if not _CLICK_INSTALLED:
            pytest.skip("click is not installed here (the click-missing case covers this typer)")
    else:
        if not _TYPER_VENDORS_CLICK:
            pytest.skip("this typer imports click itself, so click cannot be hidden from it")
        hidden = tmp_path / "hide_click" / "click"
        hidden.mkdir(parents=True)
        (hidden / "__init__.py").write_text('raise ImportError("click is hidden by this test")\n')
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hidden.parent), env.get("PYTHONPATH")]))
    script = _leandl_script()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script, *args], capture_output=True, text=True, env=env, timeout=120)

    return run


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_bare_leandl_shows_help(run_leandl):
    res = run_leandl()
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    assert "Usage" in res.stdout + res.stderr
    assert "run" in res.stdout + res.stderr


def test_short_help(run_leandl):
    res = run_leandl("-h")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert "Usage" in res.stdout and "run" in res.stdout


def test_version(run_leandl):
    res = run_leandl("--version")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stdout.strip() == f"leandl {leandl.__version__}"


def test_unknown_option(run_leandl):
    res = run_leandl("--no-such-option")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "--no-such-option" in _one_error_line(res)


def test_missing_argument(run_leandl):
    res = run_leandl("run")
    assert res.returncode == 2, (res.stdout, res.stderr)
    line = _one_error_line(res)
    assert "recipe" in line.lower() and "leandl run --help" in line


def test_debug_shows_the_traceback(run_leandl):
    res = run_leandl("run", "--debug")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" in res.stderr
    assert res.stderr.rstrip().splitlines()[-1].startswith("error: ")


# In-process: exceptions that the real commands cannot be made to raise on demand.


@pytest.fixture(autouse=True)
def _no_debug_env(monkeypatch):
    # main() sets LEANDL_DEBUG for --debug; monkeypatch puts the variable back afterwards.
    monkeypatch.setenv("LEANDL_DEBUG", "0")


def _app_raising(exc: BaseException) -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.command("boom")
    def boom() -> None:
        raise exc

    @app.command("other")
    def other() -> None:
        pass

    return app


@pytest.mark.parametrize("hide_click", [False, True])
def test_unexpected_exception_is_one_paragraph(monkeypatch, capsys, hide_click):
    if hide_click:
        monkeypatch.setitem(sys.modules, "click", None)  # `import click` raises ImportError
    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(ValueError("bad value")))
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected ValueError: bad value") and "--debug" in err
    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(ValueError("bad value")))
    with pytest.raises(ValueError, match="bad value"):
        cli.main(["boom", "--debug"])


def test_typer_exit_code_is_kept(monkeypatch):
    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(typer.Exit(3)))
    assert cli.main(["boom"]) == 3
    assert cli.main(["other"]) == 0


def test_abort_exits_130(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_app", lambda: _app_raising(typer.Abort()))
    assert cli.main(["boom"]) == 130
    assert capsys.readouterr().err == "error: aborted\n"
