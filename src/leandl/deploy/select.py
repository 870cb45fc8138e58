"""Pick the deployment backend by measurement: the fastest one that keeps the model's accuracy.

:func:`select_backend` (the engine of ``leandl deploy`` and of the ``deploy`` recipe stage)

1. lists the eligible backends (:func:`eligible_backends`): ``eager``, ``eager-channels-last``
   (models with an image input and 2-D convolutions), ``compile``, ``onnxruntime``,
   ``onnxruntime-int8``, ``torchao-x86``, ``openvino`` and ``openvino-int8`` (OpenVINO running
   the same fp32 / int8 ONNX files; where openvino is installed) and, for models whose MACs are
   mostly outside convolutions (transformers, MLPs), ``onnxruntime-dynamic-int8``; the others
   are listed as skipped with the reason;
2. builds each (:func:`leandl.deploy.bench.build_backends`); static int8 calibrates on the
   given batches only (real inputs, or random ones a caller asked for and labels as such);
3. checks each on held-out inputs against eager PyTorch: top-1 agreement and cosine of the
   primary output, and, when labels are given, accuracy;
4. times every backend that passed at each batch size x thread count, in interleaved rounds
   (:func:`leandl.deploy.bench.time_backends`);
5. keeps, per batch size x threads, the fastest backend within tolerance, and overall the
   backend with the lowest geometric mean of ``latency / eager latency`` over all of them.

Tolerance: with labels, ``accuracy(eager) - accuracy(backend) <= max_accuracy_drop`` (default
0.01, one point of top-1); without labels, ``cosine(eager, backend) >= min_cosine`` (default
0.99) on the primary output. Eager is the reference and always within tolerance.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.deploy.bench import _reason, build_backends, noise_fields, time_backends
from leandl.deploy.io import call_model, input_tensors, primary_output
from leandl.deploy.onnx_export import compare_outputs
from leandl.measure._util import rebatch

__all__ = ["CANDIDATES", "SLOW", "DeploySelection", "conv_mac_share", "eligible_backends", "select_backend",
           "format_selection", "write_deployment"]

CANDIDATES = ("eager", "eager-channels-last", "compile", "onnxruntime", "onnxruntime-int8", "torchao-x86",
              "onnxruntime-dynamic-int8", "openvino", "openvino-int8")
SLOW = ("compile", "torchao-x86")  # compile for 16-50 s per input shape


def conv_mac_share(model: nn.Module, example_inputs: Any) -> float:
    """Fraction of the model's MACs (one forward on ``example_inputs``) spent in convolutions."""
    from leandl.measure import count_macs

    count = count_macs(model, example_inputs)
    if count.total <= 0:
        return 0.0
    convs = {n for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)}
    return sum(v for n, v in count.per_module.items() if n in convs) / count.total


def eligible_backends(model: nn.Module, example_inputs: Any, *, include_slow: bool = True,
                      conv_share: float | None = None) -> tuple[list[str], dict[str, str]]:
    """The backends worth measuring for this model, and why the others are left out.

    Args:
        model: the fp32 model.
        example_inputs: one input batch.
        include_slow: also ``compile`` and ``torchao-x86`` (they compile for tens of seconds).
        conv_share: :func:`conv_mac_share` when already known.

    Returns:
        ``(names, skipped)``: backend names in :data:`CANDIDATES` order, and ``{name: reason}``.
    """
    from leandl.registry import BACKENDS

    names: list[str] = []
    skipped: dict[str, str] = {}
    image = any(t.is_floating_point() and t.dim() == 4 for t in input_tensors(example_inputs))
    has_conv2d = any(isinstance(m, nn.Conv2d) for m in model.modules())
    share = conv_mac_share(model, example_inputs) if conv_share is None else conv_share
    for name in CANDIDATES:
        why = BACKENDS.get(name).unavailable() if name in BACKENDS else "not registered"
        if why:
            skipped[name] = why
        elif name in SLOW and not include_slow:
            skipped[name] = "slow to build (compiles); left out by --quick / include_slow=False"
        elif name == "eager-channels-last" and not (image and has_conv2d):
            skipped[name] = "the model has no 4-D image input with 2-D convolutions"
        elif name == "onnxruntime-dynamic-int8" and share >= 0.5:
            skipped[name] = (f"convolutions hold {share:.0%} of the MACs: dynamic int8 quantizes only "
                             "MatMul/Gemm (ConvInteger measured 7-14x slower), so it is for Linear-heavy models")
        else:
            names.append(name)
    return names, skipped


@dataclass
class DeploySelection:
    """What :func:`select_backend` measured and chose.

    Attributes:
        backend: the chosen backend (lowest geometric-mean latency ratio to eager over all
            batch sizes x threads, within tolerance), or ``None`` when nothing ran.
        rows: one per backend x batch size x threads: the bench keys (``latency_ms``,
            ``p90_ms``, ``throughput``, ``size_bytes``, ``noisy`` ...) plus ``cosine``,
            ``accuracy`` (``None`` without labels), ``speedup_vs_eager`` and
            ``within_tolerance``.
        best: per batch size x threads, ``{"batch_size", "threads", "backend", "latency_ms",
            "speedup_vs_eager"}`` of the fastest backend within tolerance.
        skipped: ``{backend: reason}`` of the backends not measured (ineligible, cannot run
            here, build or check failed, out of tolerance).
        checks: per built backend, ``{"top1_agreement", "cosine", "max_abs_diff", "accuracy"}``.
        reference_accuracy: eager accuracy on the labels, ``None`` without labels.
        tolerance: the rule applied, e.g. ``{"max_accuracy_drop": 0.01}``.
        artifact: the chosen backend's file (ONNX) when it has one, copied by the caller.
        notes: the chosen backend's build notes (calibration source ...).
    """

    backend: str | None
    rows: list[dict[str, Any]]
    best: list[dict[str, Any]]
    skipped: dict[str, str]
    checks: dict[str, dict[str, Any]]
    reference_accuracy: float | None
    tolerance: dict[str, float]
    artifact: Path | None = None
    notes: str = ""


def _check(run: Any, reference: Any, inputs: Any, labels: torch.Tensor | None) -> dict[str, Any]:
    with torch.inference_mode():
        out = call_model(run, inputs)
    res = compare_outputs(reference, out)
    acc = None
    if labels is not None:
        logits = out if isinstance(out, torch.Tensor) else primary_output(out)
        acc = float((logits.argmax(-1).cpu() == labels.cpu()).float().mean())
    return {"top1_agreement": res.top1_agreement, "cosine": res.cosine, "max_abs_diff": res.max_abs_diff,
            "accuracy": acc}


def _passes(check: dict[str, Any], ref_acc: float | None, max_drop: float, min_cosine: float) -> str | None:
    """``None`` when within tolerance, else why not."""
    if ref_acc is not None and check["accuracy"] is not None:
        drop = ref_acc - check["accuracy"]
        if drop > max_drop + 1e-12:
            return (f"out of tolerance: accuracy {check['accuracy']:.4f} vs eager {ref_acc:.4f} "
                    f"(drop {drop * 100:.2f} points > {max_drop * 100:.2f})")
        return None
    cos = check["cosine"]
    if not (cos >= min_cosine):  # NaN fails too
        return f"out of tolerance: cosine to eager {cos:.4f} < {min_cosine}"
    return None


def select_backend(
    model: nn.Module,
    check_inputs: Any,
    *,
    labels: torch.Tensor | None = None,
    calibration: Sequence[Any] = (),
    backends: Sequence[str] | None = None,
    batch_sizes: Sequence[int] = (1, 64),
    threads: Sequence[int] = (2,),
    max_accuracy_drop: float = 0.01,
    min_cosine: float = 0.99,
    include_slow: bool = True,
    warmup: int = 3,
    repeats: int = 20,
    workdir: str | Path | None = None,
) -> DeploySelection:
    """Measure the eligible backends and choose the fastest within tolerance.

    Args:
        model: the fp32 model (not modified).
        check_inputs: held-out input batch (any structure, :mod:`leandl.deploy.io`); used for
            the accuracy check and, re-batched, for timing.
        labels: class labels of ``check_inputs`` (accuracy tolerance), or ``None`` (cosine).
        calibration: input batches for static int8 (empty: static int8 backends are skipped).
        backends: names to consider; ``None`` = :func:`eligible_backends`.
        batch_sizes, threads: the deployment settings to time.
        max_accuracy_drop: allowed accuracy loss vs eager, as a fraction (0.01 = 1 point).
        min_cosine: minimum cosine to eager's primary output when there are no labels.
        include_slow: with ``backends=None``, also the compiling backends.
        warmup, repeats: untimed / timed calls per measurement (2 timed calls per round).
        workdir: folder for the backends' artifacts (kept); a temporary one by default, in
            which case :attr:`DeploySelection.artifact` is ``None``.
    """
    if not 0.0 <= max_accuracy_drop <= 1.0:
        raise ValueError(f"max_accuracy_drop must be in [0, 1], got {max_accuracy_drop}")
    if not -1.0 <= min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be in [-1, 1], got {min_cosine}")
    model = copy.deepcopy(model).cpu().eval()
    skipped: dict[str, str] = {}
    if backends is None:
        # one forward on two samples is enough to count where the MACs go
        names, skipped = eligible_backends(model, rebatch(check_inputs, 2), include_slow=include_slow)
    else:
        names = list(dict.fromkeys(backends))
    if "eager" not in names:
        names.insert(0, "eager")  # the reference every ratio is taken against
    with torch.inference_mode():
        reference = call_model(model, check_inputs)
    ref_acc = None
    if labels is not None:
        logits = primary_output(reference)
        if logits.shape[0] != labels.shape[0]:
            raise ValueError(f"labels hold {labels.shape[0]} values, the check batch {logits.shape[0]} samples")
        ref_acc = float((logits.argmax(-1) == labels).float().mean())
    tolerance = {"max_accuracy_drop": max_accuracy_drop} if labels is not None else {"min_cosine": min_cosine}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        built, failed = build_backends(model, names, check_inputs, calibration, root)
        skipped.update(failed)
        checks: dict[str, dict[str, Any]] = {}
        for name in list(built):
            try:
                checks[name] = _check(built[name].runner(threads[0]), reference, check_inputs, labels)
            except Exception as exc:  # a backend that cannot run the check batch is not deployable
                skipped[name] = _reason(exc)
                built.pop(name)
                continue
            why = None if name == "eager" else _passes(checks[name], ref_acc, max_accuracy_drop, min_cosine)
            if why:
                skipped[name] = why
                built.pop(name)
        timed = time_backends(built, check_inputs, batch_sizes, threads, warmup, repeats)
        rows, best = _rows(built, checks, timed, batch_sizes, threads)
        choice = _choose(rows, list(built))
        artifact = built[choice].artifact if choice is not None and workdir is not None else None
        notes = built[choice].notes if choice is not None else ""
    return DeploySelection(backend=choice, rows=rows, best=best, skipped=skipped, checks=checks,
                           reference_accuracy=ref_acc, tolerance=tolerance, artifact=artifact, notes=notes)


def _rows(built: dict[str, Any], checks: dict[str, dict[str, Any]], timed: dict[tuple[str, int, int], Any],
          batch_sizes: Sequence[int], threads: Sequence[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    best: list[dict[str, Any]] = []
    for t in threads:
        for bs in batch_sizes:
            eager = timed.get(("eager", bs, t))
            eager_ms = None if eager is None or isinstance(eager, str) else eager.median_ms
            group = []
            for name, b in built.items():
                got = timed[(name, bs, t)]
                r: dict[str, Any] = {"backend": name, "batch_size": bs, "threads": t, "size_bytes": b.size_bytes,
                                     "note": b.notes or None, **checks[name], "within_tolerance": True}
                if isinstance(got, str):
                    r.update(status=got, latency_ms=None, p90_ms=None, throughput=None, speedup_vs_eager=None,
                             noisy=None, p90_over_median=None)
                else:
                    r.update(status="ok", latency_ms=got.median_ms, p90_ms=got.p90_ms, throughput=got.throughput_per_s,
                             speedup_vs_eager=(eager_ms / got.median_ms) if eager_ms else None,
                             **noise_fields(got.median_ms, got.p90_ms))
                    group.append(r)
                rows.append(r)
            if group:
                win = min(group, key=lambda r: r["latency_ms"])
                best.append({k: win[k] for k in ("batch_size", "threads", "backend", "latency_ms", "speedup_vs_eager")})
    return rows, best


def _choose(rows: list[dict[str, Any]], names: list[str]) -> str | None:
    """The backend with the lowest geometric mean of latency / eager latency over all settings
    (only backends that ran at every setting)."""
    settings = {(r["batch_size"], r["threads"]) for r in rows}
    scores: dict[str, float] = {}
    for name in names:
        mine = [r for r in rows if r["backend"] == name and r["status"] == "ok" and r["speedup_vs_eager"]]
        if len(mine) == len(settings) and mine:
            scores[name] = math.exp(sum(-math.log(r["speedup_vs_eager"]) for r in mine) / len(mine))
    return min(scores, key=lambda n: scores[n]) if scores else None


def format_selection(sel: DeploySelection) -> str:
    """Terminal table of a selection: every timed row, the best per setting, the skipped."""

    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    from leandl.measure import cpu_description

    head = (f"{'backend':<26} {'batch':>5} {'thr':>3} {'median ms':>10} {'p90 ms':>9} {'vs eager':>8} "
            f"{'size MB':>8} {'top1 agr':>8} {'cosine':>8} {'acc':>6}  status")
    lines = [f"CPU: {cpu_description()}", head]
    for r in sel.rows:
        size = None if r["size_bytes"] is None else r["size_bytes"] / 1e6
        mark = ""
        if r.get("noisy"):
            mark = f", NOISY (p90 = {r['p90_over_median']:.1f}x median)"
        lines.append(f"{r['backend']:<26} {r['batch_size']:>5} {r['threads']:>3} {f(r['latency_ms'], '.3f'):>10} "
                     f"{f(r['p90_ms'], '.3f'):>9} {f(r['speedup_vs_eager'], '.2f'):>8} {f(size, '.3f'):>8} "
                     f"{f(r['top1_agreement'], '.3f'):>8} {f(r['cosine'], '.5f'):>8} {f(r['accuracy'], '.4f'):>6}  "
                     f"{r['status']}{mark}")
    if any(r.get("noisy") for r in sel.rows):
        lines.append("NOISY: p90 > 1.5 x median; the machine was busy during that timing: rerun, or trust only the "
                     "ratios (measured in the same interleaved rounds).")
    for b in sel.best:
        lines.append(f"fastest at batch {b['batch_size']}, {b['threads']} thread(s): {b['backend']} "
                     f"({b['latency_ms']:.3f} ms, {f(b['speedup_vs_eager'], '.2f')}x eager)")
    for name, why in sel.skipped.items():
        lines.append(f"not deployed: {name}: {why}")
    rule = ", ".join(f"{k} {v}" for k, v in sel.tolerance.items())
    lines.append(f"chosen: {sel.backend or 'none'} (fastest within tolerance: {rule})")
    return "\n".join(lines)


_ONNX_NAMES = {"onnxruntime": "model.onnx", "onnxruntime-int8": "model.int8.onnx",
               "onnxruntime-dynamic-int8": "model.dynamic-int8.onnx", "openvino": "model.onnx",
               "openvino-int8": "model.int8.onnx"}
_HOW = {
    "eager": "leandl.load(checkpoint) and call it under torch.inference_mode()",
    "eager-channels-last": "leandl.load(checkpoint).to(memory_format=torch.channels_last); convert 4-D inputs "
                           "with x.contiguous(memory_format=torch.channels_last)",
    "compile": "torch.compile(leandl.load(checkpoint)); the first call per input shape compiles",
    "torchao-x86": "build the torchao-x86 backend from the checkpoint with the same calibration data "
                   "(leandl.registry.BACKENDS.get('torchao-x86')().build(...)); lowering happens on the first call",
}


def write_deployment(sel: DeploySelection, out_dir: str | Path, *, model: nn.Module | None = None,
                     checkpoint: str | Path | None = None, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the chosen backend's artifact and ``deploy.json`` (the table of all) into ``out_dir``.

    ONNX backends: their file, copied to ``out_dir`` (``model.onnx``, ``model.int8.onnx`` or
    ``model.dynamic-int8.onnx``). PyTorch backends (``eager``, ``eager-channels-last``,
    ``compile``, ``torchao-x86``): the weights, as a leandl checkpoint ``out_dir/model`` when
    ``model`` is given, else the existing ``checkpoint`` is named; ``deploy.json`` says how to
    run it.

    Args:
        sel: the result of :func:`select_backend` (with a ``workdir``, so files exist).
        out_dir: the deployment folder (created).
        model: the fp32 model, saved for a PyTorch winner.
        checkpoint: an existing checkpoint of the model, named instead of saving a copy.
        info: more JSON facts for ``deploy.json`` (inputs, calibration source, load average ...).

    Returns:
        The ``deploy.json`` content.
    """
    import json
    import shutil

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    artifact: str | None = None
    if sel.backend in _ONNX_NAMES:
        if sel.artifact is None:
            raise ValueError("the selection has no artifact file: run select_backend with a workdir")
        dst = out / _ONNX_NAMES[sel.backend]
        if Path(sel.artifact).resolve() != dst.resolve():
            shutil.copyfile(sel.artifact, dst)
        artifact = dst.name
        if sel.backend.startswith("openvino"):
            how = (f"leandl.deploy.backends_openvino.OpenVinoModule('{dst.name}', threads=N) or "
                   f"openvino.Core().compile_model('{dst.name}', 'CPU')")
        else:
            how = f"leandl.deploy.OrtModule('{dst.name}', threads=N) or onnxruntime.InferenceSession('{dst.name}')"
    elif sel.backend is not None:
        if model is not None:
            from leandl.checkpoint import save

            save(model, out / "model")
            artifact = "model"
        elif checkpoint is not None:
            artifact = str(checkpoint)
        how = _HOW.get(sel.backend, f"backend {sel.backend}")
    else:
        how = "no backend ran"
    from leandl.measure import cpu_description

    doc = {"backend": sel.backend, "artifact": artifact, "how_to_run": how, "notes": sel.notes or None,
           "cpu": cpu_description(),
           "tolerance": sel.tolerance, "reference_accuracy": sel.reference_accuracy, "best": sel.best,
           "checks": sel.checks, "skipped": sel.skipped, "rows": sel.rows, **(info or {})}
    (out / "deploy.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return doc
