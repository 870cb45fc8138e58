"""``leandl recipes``: list the built-in recipes."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``recipes`` command."""

    @app.command("recipes")
    def recipes_cmd() -> None:
        """List built-in recipes with one-line descriptions (run one: leandl run NAME)."""
        from rich.console import Console
        from rich.table import Table

        from leandl.recipes.loader import builtin_recipes

        table = Table(title="built-in recipes (leandl run NAME)")
        table.add_column("name")
        table.add_column("description")
        for name, desc in builtin_recipes().items():
            table.add_row(name, desc)
        Console().print(table)
