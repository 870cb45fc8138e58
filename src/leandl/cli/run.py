"""``leandl run RECIPE``: run a recipe (optionally on several processes)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register"]


def _print_summary(summary: dict, out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['recipe']}  (run directory: {out})")
    for col in ("stage", "test acc", "params", "MACs", "size", "latency"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for s in summary["stages"]:
        m = s["metrics"]
        lat = ", ".join(f"b{b}: {v:.3g} ms" for b, v in (m.get("latency_ms") or {}).items())
        table.add_row(f"{s['dir']} ({s['name']})", f"{m.get('accuracy', float('nan')):.4f}",
                      f"{m.get('params', 0) / 1e6:.3f} M", f"{m.get('macs', 0) / 1e6:.2f} M",
                      f"{m.get('size_bytes', 0) / 1e3:.1f} kB", lat)
    Console().print(table)
    last = summary["stages"][-1]["metrics"]
    print(f"test accuracy: {last.get('accuracy', float('nan')):.4f}")


def register(app: typer.Typer) -> None:
    """Add the ``run`` command."""

    @app.command("run")
    def run_cmd(
        recipe: Annotated[str, typer.Argument(help="recipe YAML file or built-in name (see `leandl recipes`)")],
        out: Annotated[Optional[str], typer.Option("--out", help="run directory (default runs/NAME-TIME)")] = None,
        set_: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. defaults.lr=0.01")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="reuse a directory holding a run")] = False,
        seed: Annotated[Optional[int], typer.Option("--seed", help="override the recipe's seed")] = None,
        nproc: Annotated[int, typer.Option("--nproc", help="processes per node (torch.distributed)")] = 1,
        nnodes: Annotated[str, typer.Option("--nnodes", help="nodes, passed to torchrun")] = "1",
        node_rank: Annotated[int, typer.Option("--node-rank", help="this node's rank")] = 0,
        rdzv_endpoint: Annotated[Optional[str], typer.Option("--rdzv-endpoint", help="host:port")] = None,
        debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    ) -> None:
        """Run RECIPE: every stage trained, measured, checkpointed; summary.json and a report."""
        if debug:
            os.environ["LEANDL_DEBUG"] = "1"
        from leandl.train.signals import interrupted_error, stop_immediately

        if nproc > 1 or nnodes != "1":
            from leandl.cli._launch import launch

            launch(sys.argv, nproc, nnodes, node_rank, rdzv_endpoint)
            return
        if resume and out is None:
            from leandl.errors import UsageError

            raise UsageError("--resume needs --out DIR (the run to continue)")
        try:
            with stop_immediately():  # until the runner takes over the signals
                from leandl.recipes.runner import run

                summary = run(recipe, out, overrides=list(set_ or []), resume=resume, overwrite=overwrite,
                              seed=seed)
        except KeyboardInterrupt as exc:  # a hard stop (second signal, or before any stage)
            raise interrupted_error(exc, "leandl run",
                                    "completed stages and the last resume checkpoint are kept; continue with "
                                    "the same command plus --resume") from None
        if int(os.environ.get("RANK", "0")) == 0:
            out_dir = out or str(Path("runs"))
            _print_summary(summary, summary.get("out_dir", out_dir))
