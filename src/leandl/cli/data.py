"""``leandl data ...``: fetch the file-backed datasets (the only place leandl downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register", "download"]


def download(
    name: str = typer.Argument(..., help="mnist, fashion_mnist, cifar10 or cifar100"),
    root: Optional[Path] = typer.Option(None, "--root", help="data root (files go to ROOT/NAME); default $LEANDL_DATA_ROOT or ./data"),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="mirror URL replacing the official one"),
) -> None:
    """Download, verify (SHA-256) and unpack the official files of NAME."""
    from leandl.data import default_root, download_dataset

    paths = download_dataset(name, root if root is not None else default_root(), base_url=base_url)
    for p in paths:
        typer.echo(f"{p}  {p.stat().st_size / 1e6:.2f} MB ({p.stat().st_size} bytes)")
    typer.echo(f"{name}: {len(paths)} file(s) verified in {paths[0].parent if paths else root}")


def register(app: typer.Typer) -> None:
    """Add the ``data`` sub-app with its ``download`` command to ``app``."""
    sub = typer.Typer(name="data", help="Dataset files: download and verify.", no_args_is_help=True)
    sub.command("download")(download)
    app.add_typer(sub, name="data")
