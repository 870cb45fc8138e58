"""``leandl run RECIPE``: run a recipe (optionally on several processes)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register"]


def _si_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _x(ratio: float | None) -> str:
    return "" if ratio is None else f" ({ratio:.2f}x)"


def _key(kind: str, key: dict) -> str:
    """The key number, short: ``int8 99.44 %``, ``acc 99.16 %``, ``@0.5: 96.8 %``, ``ort-int8 b64 1.2 ms``."""
    value = key.get("value")
    if value is None:
        return "-"
    if kind == "bench":
        name = key["name"].split(": ", 1)[-1].replace("onnxruntime", "ort")
        return f"{name} {key['name'].split()[2].rstrip(':')} {value:.3g} ms" + (" NOISY" if key.get("noisy") else "")
    pct = f"{value * 100:.2f} %"
    if kind == "quantize":
        return f"int8 {pct}"
    if kind == "exits":
        return f"{pct} at budget"
    if kind == "export":
        return f"top-1 agree {pct}"
    return f"acc {pct}"


def _print_summary(summary: dict, out: str) -> None:
    """Per stage: what it produced, that artifact's key number (int8 accuracy for quantize, accuracy
    at the selected budget for exits), MACs (expected MACs for exits), size and latency with their
    ratios to the first stage; then the bench and exit tables, the result and the report's path."""
    from rich.console import Console
    from rich.table import Table

    from leandl.report.outline import final_stage, stage_outline

    stages = summary["stages"]
    outline = summary.get("outline") or stage_outline(stages)
    # a pipe or file has no width: give the table room instead of rich's 80 columns
    console = Console(width=None if sys.stdout.isatty() else 140)
    table = Table(title=f"{summary['recipe']}  (run directory: {out})",
                  caption=f"(x): ratio to {stages[0]['dir']}; exits: expected MACs at the selected budget")
    for col in ("stage", "produces", "key result", "MACs", "size", "latency"):
        table.add_column(col, justify="left" if col in ("stage", "produces", "key result") else "right",
                         no_wrap=col == "stage")
    noisy = False
    for s, o in zip(stages, outline, strict=False):
        m, r = s["metrics"], o["ratios"]
        lat = []
        for b, v in (m.get("latency_ms") or {}).items():
            flag = "*" if b in (o.get("noisy_latency") or {}) else ""
            noisy = noisy or bool(flag)
            lat.append(f"b{b} {v:.3g} ms{flag}{_x(r.get(f'latency_b{b}'))}")
        macs = o.get("macs")
        macs_text = "-" if macs is None else f"{macs / 1e6:.3g} M"
        stage = s["dir"] if s["name"] == s["kind"] else f"{s['dir']} ({s['name']})"
        table.add_row(stage, o["artifact"], _key(s["kind"], o["key"]), macs_text + _x(r.get("macs")),
                      _si_bytes(m.get("size_bytes")) + _x(r.get("size")), "\n".join(lat))
    console.print(table)
    if noisy:
        console.print("* NOISY: p90 > 1.5 x median; the machine was busy, so that latency is unreliable")
    for s in stages:
        if s["kind"] == "bench" and s["metrics"].get("bench"):
            from leandl.deploy.bench import format_rows

            print(f"{s['dir']}: backends")
            print(format_rows(s["metrics"]["bench"]))
        for row in s["metrics"].get("budgets") or [] if s["kind"] == "exits" else []:
            wall = (row.get("wall_clock") or {}).get("speedup")
            print(f"{s['dir']}: budget {row['budget_fraction']:.2f} of the MACs: accuracy "
                  f"{row['test_accuracy'] * 100:.2f} %, expected {row['test_expected_macs'] / 1e6:.3g} M MACs"
                  + (f", wall-clock speed-up {wall:.2f}x" if wall else ""))
    result = summary.get("result") or final_stage(stages)
    if result and result.get("accuracy") is not None:
        print(f"test accuracy: {result['accuracy'] * 100:.2f} % ({result['artifact']} of {result['stage']})")
    report = Path(summary.get("report") or Path(out) / "report.html")
    print(f"report: {report}" if report.is_file() else f"report: not written ({report} is missing)")


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
