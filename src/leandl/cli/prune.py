"""``leandl prune CKPT --criterion NAME --target macs=0.5 --out DIR``: one-shot structured pruning.

Loads a checkpoint (or builds a registry model), prunes it physically, saves a checkpoint that
reloads without pickle (the kept indices are a recorded structural edit), and prints params,
MACs and measured latency before and after.

Data criteria (``taylor``, ``di``) score channels on ``--batches`` labelled training batches of
``--data`` (a dataset name), by default the dataset of the run the checkpoint came from (the
``recipe.yaml`` of its run directory). ``--sparsity S`` instead zeroes the fraction S of the
conv/linear weights of smallest magnitude (one-shot unstructured pruning, ``--scope`` global or
layerwise): shapes and dense latency do not change, only the compressed storage, which it prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from leandl.errors import UsageError

__all__ = ["register", "prune_command", "parse_target"]


def parse_target(text: str) -> dict[str, float]:
    """``"macs=0.5"`` / ``"latency_ms=20,batch_size=64"`` -> dict; UsageError otherwise."""
    out: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"cannot read target '{text}'", where="--target",
                             fix="use KEY=VALUE, e.g. --target macs=0.5 or --target ratio=0.3")
    return out


def prune_command(
    checkpoint: str = typer.Argument(..., help="Checkpoint directory or registry model name."),
    criterion: str = typer.Option("l1", "--criterion", help="l1, l2, fpgm, bn_scale, random ..."),
    target: str = typer.Option("macs=0.5", "--target",
                               help="macs=0.5 keeps 50 % of the MACs; latency=0.6 keeps 60 % of "
                                    "the measured latency; latency_ms=20 is a budget in ms."),
    out: Path = typer.Option(..., "--out", help="Output checkpoint directory."),
    input_shape: Optional[str] = typer.Option(
        None, "--input-shape",
        help="Batch-first shape (default: the checkpoint's recorded input shape, else 1,3,32,32)."),
    round_to: Optional[int] = typer.Option(8, "--round-to", help="Round kept widths (0: off)."),
    scope: str = typer.Option("global", "--scope", help="global or layerwise."),
    max_ratio: float = typer.Option(0.9, "--max-ratio", help="Max fraction removed per group."),
    batch_size: int = typer.Option(64, "--batch-size", help="Batch for the latency timing."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads for timing."),
    trust: bool = typer.Option(False, "--trust", help="Trust a spec naming outside code."),
    strict: bool = typer.Option(False, "--strict",
                                help="Fail on an op leandl cannot prune through (default: keep "
                                     "those channels whole and say so)."),
    allow_miss: bool = typer.Option(False, "--allow-miss",
                                    help="Accept a result more than 2 % off a MACs/params target."),
    data: Optional[str] = typer.Option(
        None, "--data", help="Dataset for taylor/di (default: the checkpoint's run's recipe data)."),
    batches: int = typer.Option(8, "--batches", min=1, max=1000, help="Batches scored by taylor/di."),
    sparsity: Optional[float] = typer.Option(
        None, "--sparsity", min=0.0, max=0.999,
        help="One-shot unstructured magnitude pruning of this fraction of weights (no --target)."),
) -> None:
    """Prune CHECKPOINT to a target and save the result to --out."""
    import torch

    from leandl.checkpoint import save
    from leandl.cli.profile import _build_model, parse_int_list
    from leandl.measure import compare_latency
    from leandl.prune.api import prune_
    from leandl.registry import CRITERIA

    shape = parse_int_list(input_shape or _recorded_shape(checkpoint) or "1,3,32,32",
                           "--input-shape", "--input-shape 1,3,32,32", min_len=2)
    model = _build_model(checkpoint, shape, None, trust)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    if sparsity is not None:
        _unstructured(model, x, sparsity, scope, out, batch_size, threads)
        return
    data_batches = None
    if CRITERIA.get(criterion).needs_data:
        data_batches = _data_batches(checkpoint, data, batches, criterion)
    dense = __import__("copy").deepcopy(model).eval()
    goal = parse_target(target)
    if any(k.startswith("latency") for k in goal):  # time the budget as the summary below does
        goal.setdefault("batch_size", batch_size)
        if threads is not None:
            goal.setdefault("threads", threads)
    report = prune_(model, x, criterion=criterion, target=goal, scope=scope,
                    max_ratio=max_ratio, round_to=round_to or None, strict=strict,
                    allow_miss=allow_miss, batches=data_batches)
    save(model, out, metrics={"prune": report.to_dict()})
    xb = x[:1].expand(batch_size, *x.shape[1:]).contiguous()
    lat = compare_latency({"dense": dense, "pruned": model.eval()}, xb, rounds=10, warmup=1,
                          repeats=3, threads=threads)
    typer.echo(f"params  {report.params_before / 1e6:.3f} M -> {report.params_after / 1e6:.3f} M")
    typer.echo(f"MACs    {report.macs_before / 1e6:.2f} M -> {report.macs_after / 1e6:.2f} M "
               f"({100 * report.achieved['macs']:.1f} % kept, batch 1)")
    rounds = sorted(lat.speedup["pruned"])
    typer.echo(f"latency {lat.median_ms['dense']:.2f} ms -> {lat.median_ms['pruned']:.2f} ms "
               f"(batch {batch_size}, {lat.threads} threads, speed-up "
               f"{lat.speedup_median['pruned']:.2f}x, rounds {rounds[0]:.2f}x-{rounds[-1]:.2f}x, "
               f"eager CPU)")
    warning = latency_noise(lat)
    if warning:
        typer.echo(f"noisy   {warning}")
    if report.latency:
        lr = report.latency
        budget = (f"{lr['budget_fraction']:.3f}" if "budget_fraction" in lr
                  else f"{lr['budget_ms']:.2f} ms = {lr['budget_ms'] / lr['dense_ms']:.3f}")
        typer.echo(f"budget  {budget} of the unpruned latency; measured at prune time "
                   f"{lr['measured_fraction']:.3f} (interleaved ratio; it drifts by a few % between runs)")
    for name, why in report.kept_whole.items():
        typer.echo(f"kept whole  {name}: {why}")
    typer.echo(f"saved   {out}")


def _unstructured(model, x, sparsity: float, scope: str, out: Path, batch_size: int,
                  threads: Optional[int]) -> None:
    from leandl.checkpoint import save
    from leandl.prune.unstructured import prune_unstructured_, storage_report

    masks = prune_unstructured_(model, sparsity, scope=scope)
    rep = storage_report(model.eval(), x, batch_sizes=(batch_size,), threads=threads, repeats=5)
    save(model, out, metrics={"unstructured": {k: v for k, v in rep.to_dict().items() if k != "per_tensor"}})
    mb = 1 / 2**20
    typer.echo(f"sparsity {rep.sparsity:.3f} of {sum(m.numel() for m in masks.values())} conv/linear "
               f"weights ({scope}); shapes unchanged")
    typer.echo(f"storage dense {rep.dense_bytes * mb:.3f} MiB, bitmask+values {rep.bitmask_bytes * mb:.3f} "
               f"MiB, CSR {rep.csr_bytes * mb:.3f} MiB")
    typer.echo(f"latency {rep.dense_latency_ms[batch_size]:.2f} ms at batch {batch_size} (dense kernels: "
               "zeros are not skipped, so it does not drop)")
    typer.echo(f"saved   {out}")


def _data_batches(checkpoint: str, data: Optional[str], n: int, criterion: str) -> list:
    """``n`` labelled training batches of ``--data`` or of the checkpoint's run's recipe data."""
    from leandl.data import load_data, make_loader

    cfg: dict = {"name": data} if data else _run_data(checkpoint) or {}
    if not cfg.get("name"):
        raise UsageError(f"criterion '{criterion}' scores channels on labelled data, and no dataset "
                         f"is known for '{checkpoint}' (not inside a `leandl run` directory)",
                         where="--data", fix="name one, e.g. --data digits (`leandl list datasets`), "
                                             "or use a data-free criterion (l1, l2, fpgm, bn_scale)")
    bundle = load_data(cfg["name"], root=cfg.get("root"), seed=int(cfg.get("seed", 0)),
                       **(cfg.get("options") or {}))
    loader = make_loader(bundle.train, int(cfg.get("batch_size") or 64), shuffle=True, seed=0)
    out = []
    for xb, yb, *_ in loader:
        out.append((xb, yb))
        if len(out) >= n:
            break
    return out


def _run_data(checkpoint: str) -> dict | None:
    """The ``data`` section of the ``recipe.yaml`` of the run a checkpoint directory belongs to."""
    path = Path(checkpoint)
    if not path.is_dir():
        return None
    from leandl.recipes.loader import _yaml_load

    for parent in list(path.resolve().parents)[:3]:
        rec = parent / "recipe.yaml"
        if rec.is_file():
            doc = _yaml_load(rec.read_text(), str(rec))
            if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
                return {**doc["data"], "seed": doc.get("seed", 0)}
    return None


def _recorded_shape(checkpoint: str) -> str | None:
    """The batch-1 input shape a checkpoint's spec records (``input_shape`` kwarg), if any."""
    meta = Path(checkpoint) / "leandl.json"
    if not meta.is_file():
        return None
    from leandl.checkpoint import read_meta

    try:
        shape = (read_meta(checkpoint).get("spec") or {}).get("kwargs", {}).get("input_shape")
    except Exception:  # noqa: BLE001 - a bad checkpoint is reported by load() below
        return None
    if isinstance(shape, list) and shape and all(isinstance(v, int) for v in shape):
        return ",".join(str(v) for v in [1, *shape])
    return None


def register(app: typer.Typer) -> None:
    """Add the ``prune`` command to ``app``."""
    app.command("prune")(prune_command)


def latency_noise(lat: Any) -> str | None:
    """Why the dense-vs-pruned timing cannot be trusted, or None when it looks steady.

    Flags a variant whose p90 exceeds 1.5x its median over all timed calls, and a speed-up whose
    per-round values fall on both sides of 1.0 (so even its direction is not established).
    """
    why = [f"{n} p90 {s.p90_ms:.2f} ms > 1.5x its median {s.median_ms:.2f} ms"
           for n, s in lat.stats.items() if s.median_ms > 0 and s.p90_ms > 1.5 * s.median_ms]
    ups = lat.speedup["pruned"]
    if min(ups) < 1.0 < max(ups):
        why.append(f"per-round speed-ups span 1.0 ({min(ups):.2f}x-{max(ups):.2f}x)")
    if not why:
        return None
    return "; ".join(why) + " -- the speed-up is not reliable; rerun on a quiet machine " \
        "(leandl bench CKPT times it with more rounds)"

