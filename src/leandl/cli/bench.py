"""``leandl bench CKPT``: time a checkpoint on several backends, outputs checked against eager.

For each backend (``--backends``, names from ``leandl list backends``) the outputs are first
compared with eager PyTorch on a check batch (max abs diff, top-1 agreement), then latency
median/p90 (ms), throughput (samples/s) and artifact size (bytes) are measured for every
``--batch-sizes`` x ``--threads``. A backend that fails is a row with status ``failed: reason``;
one that cannot run here at all (a torch without TorchScript, no torchao, static int8 without
calibration inputs) is ``skipped: reason``. Static int8 calibrates on ``--data`` training
inputs; without ``--data`` it is skipped unless ``--random-calibration`` asks for random
inputs (then its rows say ``calibrated on random ...`` in ``note``). ``--input-dtype int64``
benchmarks a token model on synthetic token ids (``--input-shape 1,128``).
``--json`` prints the rows as JSON (keys ``backend, batch_size, threads, status, latency_ms,
p90_ms, throughput, size_bytes, max_abs_diff, top1_agreement, noisy, p90_over_median, note``,
plus ``inputs`` and ``calibration``); ``--out`` also writes them. A timing whose p90 exceeds
1.5x its median is ``noisy: true`` and marked ``NOISY`` in the table.

``--quick`` is a first look in seconds: backends ``eager,onnxruntime,onnxruntime-int8`` (no
``compile``, which builds for 16-50 s), one thread, 1 warm-up and 10 timed calls per
measurement; any option given explicitly overrides it. It is a flag, not the default, so the
full comparison stays what ``leandl bench CKPT`` runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register", "parse_names", "FULL", "QUICK"]

FULL = {"backends": "eager,torchscript,compile,onnxruntime,onnxruntime-int8", "batch_sizes": "1,64",
        "threads": "1,2", "warmup": 3, "repeats": 40}
QUICK = {"backends": "eager,onnxruntime,onnxruntime-int8", "batch_sizes": "1,64", "threads": "1", "warmup": 1,
         "repeats": 10}


def parse_names(text: str, option: str) -> list[str]:
    """Split ``"a,b"`` into names; every name must be a registered backend."""
    from leandl.errors import UsageError, unknown_name_message
    from leandl.registry import BACKENDS

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("no backend given", where=option, fix="for example --backends eager,onnxruntime")
    for n in names:
        if n not in BACKENDS:
            raise UsageError(unknown_name_message("backend", n, BACKENDS.names()), where=option)
    return names


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command."""

    @app.command("bench")
    def bench_cmd(
        ckpt: Annotated[str, typer.Argument(help="checkpoint directory (holds leandl.json)")],
        backends: Annotated[Optional[str], typer.Option(
            "--backends", help="comma-separated backend names (default eager,torchscript,compile,onnxruntime,"
                               "onnxruntime-int8; --quick: eager,onnxruntime,onnxruntime-int8); also "
                               "eager-channels-last, onnxruntime-dynamic-int8, torchao-x86, openvino, openvino-int8")] = None,
        batch_sizes: Annotated[Optional[str], typer.Option("--batch-sizes", help="batch sizes (default 1,64)")] = None,
        threads: Annotated[Optional[str], typer.Option(
            "--threads", help="intra-op thread counts (default 1,2; --quick: 1)")] = None,
        input_shape: Annotated[Optional[str], typer.Option("--input-shape",
                                                           help="batch first, e.g. 1,3,32,32 (default: from the checkpoint)")] = None,
        data: Annotated[Optional[str], typer.Option("--data", help="real inputs from this data set (default synthetic)")] = None,
        root: Annotated[Optional[str], typer.Option("--root", help="data directory")] = None,
        calibration_batches: Annotated[int, typer.Option("--calibration-batches", help="batches for static int8")] = 8,
        warmup: Annotated[Optional[int], typer.Option(
            "--warmup", help="untimed calls per measurement (default 3; --quick: 1)")] = None,
        repeats: Annotated[Optional[int], typer.Option(
            "--repeats", help="timed calls per measurement, 2 per interleaved round (default 40; --quick: 10)")] = None,
        quick: Annotated[bool, typer.Option(
            "--quick", help="a fast look (< 20 s on a small model): no slow-building backends, one thread "
                            "count, 10 timed calls; options given explicitly still win")] = False,
        random_calibration: Annotated[bool, typer.Option(
            "--random-calibration", help="calibrate static int8 on random inputs when no --data is given")] = False,
        input_dtype: Annotated[str, typer.Option(
            "--input-dtype", help="synthetic input dtype: float32, or int64 for token ids")] = "float32",
        out: Annotated[Optional[Path], typer.Option("--out", help="also write the JSON rows here")] = None,
        trust: Annotated[bool, typer.Option("--trust", help="allow code outside leandl's registry")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    ) -> None:
        """Benchmark CKPT on several backends (check outputs, then latency, throughput, size)."""
        from leandl.checkpoint import load
        from leandl.cli.profile import parse_int_list
        from leandl.deploy.bench import bench_backends, format_rows
        from leandl.deploy.inputs import checkpoint_input_shape, deploy_inputs, model_vocab_size
        from leandl.errors import UsageError

        preset = QUICK if quick else FULL
        backends = backends if backends is not None else preset["backends"]
        warmup = warmup if warmup is not None else preset["warmup"]
        repeats = repeats if repeats is not None else preset["repeats"]
        names = parse_names(backends, "--backends")
        sizes = parse_int_list(batch_sizes or preset["batch_sizes"], "--batch-sizes", "--batch-sizes 1,64")
        thr = parse_int_list(threads or preset["threads"], "--threads", "--threads 1,2")
        if repeats < 1 or warmup < 0 or calibration_batches < 1:
            raise UsageError("need --repeats >= 1, --warmup >= 0 and --calibration-batches >= 1")
        shape = parse_int_list(input_shape, "--input-shape", "--input-shape 1,3,32,32", min_len=2) if input_shape else None
        model = load(ckpt, trust=trust)
        inputs = deploy_inputs(checkpoint_input_shape(ckpt, shape), data=data, root=root,
                               check_size=64 if quick else 256, calibration=calibration_batches, dtype=input_dtype,
                               vocab_size=model_vocab_size(model), random_calibration=random_calibration)
        rows = bench_backends(model, names, inputs.check, batch_sizes=sizes, threads=thr,
                              calibration=inputs.calibration, warmup=warmup, repeats=repeats)
        for r in rows:
            r["inputs"] = inputs.source
            r["calibration"] = inputs.calibration_source
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=2) + "\n")
        if as_json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{ckpt}: inputs {inputs.source} {tuple(inputs.check.shape[1:])}, calibration "
                  f"{inputs.calibration_source}, device cpu")
            print(format_rows(rows))
