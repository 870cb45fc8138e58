"""The ``leandl`` command (typer), thin over the Python API.

Each module in this package defines ``register(app: typer.Typer) -> None`` and adds its
commands; :func:`main` discovers them all, so a new command is a one-file change. Errors of
type :class:`leandl.errors.LeandlError` print one paragraph and exit with the error's code
(2 for usage errors); a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from typing import TYPE_CHECKING

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
    )
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
        app(args=args, prog_name="leandl", standalone_mode=False)
    except LeandlError as err:
        if debug:
            raise
        _print_error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        _print_error("interrupted")
        return 130
    except SystemExit as exc:  # typer/click exits (help, usage)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.exceptions.Abort):
            _print_error("aborted")
            return 130
        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return 2 if isinstance(exc, click.exceptions.UsageError) else 1
        if debug:
            raise
        _print_error(
            f"unexpected {type(exc).__name__}: {exc}. This is a bug in leandl or an unsupported "
            "input; run again with --debug for the traceback and report it"
        )
        return 1
    return 0


def _print_error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
