"""``leandl list KIND``: names in a registry (techniques, criteria, stages, datasets, models)."""

from __future__ import annotations

import typer

__all__ = ["register"]

_KINDS = {"techniques": "TECHNIQUES", "criteria": "CRITERIA", "stages": "STAGES", "datasets": "DATASETS",
          "models": "MODELS", "backends": "BACKENDS", "losses": "LOSSES"}


def register(app: typer.Typer) -> None:
    """Add the ``list`` command."""

    @app.command("list")
    def list_cmd(kind: str = typer.Argument(..., help=f"one of: {', '.join(_KINDS)}")) -> None:
        """List registered names of KIND with one-line descriptions."""
        from rich.console import Console
        from rich.table import Table

        import leandl.registry as reg
        from leandl.errors import UsageError, unknown_name_message

        key = kind if kind in _KINDS else kind + "s" if kind + "s" in _KINDS else None
        if key is None:
            raise UsageError(unknown_name_message("registry", kind, _KINDS))
        registry = getattr(reg, _KINDS[key])
        table = Table(title=key)
        table.add_column("name")
        table.add_column("description")
        for name in registry.names():
            table.add_row(name, registry.describe(name))
        Console().print(table)
