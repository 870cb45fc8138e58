"""The ``leandl`` command (typer), thin over the Python API.

Each module in this package defines ``register(app: typer.Typer) -> None`` and adds its
commands; :func:`main` discovers them all, so a new command is a one-file change. Errors of
type :class:`leandl.errors.LeandlError` print one paragraph and exit with the error's code
(2 for usage errors); click's usage errors (unknown option, missing argument ...) print one line
and exit 2; a traceback is shown only with ``--debug``. The error path works whether click is
typer's dependency (older typer) or vendored inside typer as ``typer._click`` (newer typer, which
no longer installs click).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

__all__ = ["main", "build_app"]


def build_app() -> typer.Typer:
    """Create the typer app with every command module registered."""
    import typer

    app = typer.Typer(
        name="leandl",
        help="Resource-efficient deep learning: measure, prune, quantize, distill, exit early.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def _show_version(value: bool) -> None:
        if value:
            from leandl import __version__

            typer.echo(f"leandl {__version__}")
            raise typer.Exit()

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", help="Print leandl's version and exit.", is_eager=True,
            callback=_show_version,
        ),
    ) -> None:
        pass

    pkg = importlib.import_module(__name__)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``leandl`` console script."""
    from leandl.errors import LeandlError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LEANDL_DEBUG") == "1"
    if "--debug" in args:
        # --debug is accepted anywhere on the line; commands read LEANDL_DEBUG.
        args.remove("--debug")
        os.environ["LEANDL_DEBUG"] = "1"
    app = build_app()
    try:
        rv = app(args=args, prog_name="leandl", standalone_mode=False)
    except LeandlError as err:
        if debug:
            raise
        _print_error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        _print_error("interrupted")
        return 130
    except SystemExit as exc:  # a sys.exit() inside a command
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except Exception as exc:  # click's usage errors and aborts, and the unexpected
        return _handle_exception(exc, debug)
    if not args:
        return 2  # bare `leandl` printed the help; click < 8.2 ends that with exit 0, newer with 2
    # Without standalone mode, ``raise typer.Exit(code)`` comes back as the return value;
    # commands themselves return None.
    code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    if code == 130:
        _print_error("interrupted")  # newer typer turns Ctrl-C into a silent 130
    return code


def _handle_exception(exc: Exception, debug: bool) -> int:
    import typer

    exceptions = _click_exceptions()
    click_error = getattr(exceptions, "ClickException", None)
    usage_error = getattr(exceptions, "UsageError", None)
    if isinstance(exc, typer.Abort):  # click's Abort in older typer, typer's own in newer
        _print_error("aborted")
        return 130
    if click_error is not None and isinstance(exc, click_error):
        if debug:
            traceback.print_exc()
        if type(exc).__name__ == "NoArgsIsHelpError":
            # bare `leandl`: the help text is the message (rich has printed it already).
            text = exc.format_message()
            if text.strip():
                sys.stderr.write(text.rstrip("\n") + "\n")
            return 2
        message = " ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
        ctx = getattr(exc, "ctx", None)
        if usage_error is not None and isinstance(exc, usage_error):
            command = getattr(ctx, "command_path", None) or "leandl"
            _print_error(f"{message.rstrip('.')} (see '{command} --help')")
            return 2
        _print_error(message)
        return int(getattr(exc, "exit_code", 1) or 1)
    if debug:
        raise exc
    _print_error(
        f"unexpected {type(exc).__name__}: {exc}. This is a bug in leandl or an unsupported "
        "input; run again with --debug for the traceback and report it"
    )
    return 1


def _click_exceptions() -> Any:
    """The exceptions module of the click that typer runs on, or None.

    typer 0.2x and older depend on click; newer typer vendors it as ``typer._click`` and no
    longer installs click, so ``import click`` may fail (or find an unrelated click).
    """
    try:
        from typer._click import exceptions
    except ImportError:
        try:
            from click import exceptions
        except ImportError:
            return None
    return exceptions


def _print_error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
