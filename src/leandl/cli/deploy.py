"""``leandl deploy CKPT``: measure the eligible backends, write the fastest within tolerance.

The eligible backends (:func:`leandl.deploy.select.eligible_backends`: eager, channels-last for
CNNs, ``torch.compile`` where a C++ compiler exists, ONNX Runtime fp32, ONNX Runtime static
int8, torchao x86 int8 where torchao is installed, dynamic int8 for Linear-heavy models) are
built, checked on held-out inputs and timed at ``--batch-sizes`` x ``--threads``; the fastest
one within tolerance (``--max-accuracy-drop`` points of top-1 with ``--data``, else
``--min-cosine`` to eager) is written to ``--out`` with ``deploy.json``, the table of all
(skipped backends with their reason).

Inputs: ``--data NAME`` gives real held-out inputs with labels (test split) and calibration
batches (training split). Without it the check inputs are synthetic (labelled ``synthetic``)
and static int8 is skipped unless ``--random-calibration`` asks for random calibration
(labelled ``random (asked for)`` in ``deploy.json``). ``--quick`` leaves out the compiling
backends and times fewer calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``deploy`` command."""

    @app.command("deploy")
    def deploy_cmd(
        ckpt: Annotated[str, typer.Argument(help="checkpoint directory (holds leandl.json)")],
        out: Annotated[Optional[Path], typer.Option("--out", help="deployment folder (default CKPT/deploy)")] = None,
        backends: Annotated[Optional[str], typer.Option(
            "--backends", help="comma-separated backends to consider (default: every eligible one)")] = None,
        batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="batch sizes to time")] = "1,64",
        threads: Annotated[str, typer.Option("--threads", help="intra-op thread counts to time")] = "2",
        data: Annotated[Optional[str], typer.Option(
            "--data", help="held-out inputs + labels and calibration data from this data set (default synthetic)")] = None,
        root: Annotated[Optional[str], typer.Option("--root", help="data directory")] = None,
        input_shape: Annotated[Optional[str], typer.Option(
            "--input-shape", help="batch first, e.g. 1,3,32,32 (default: from the checkpoint)")] = None,
        input_dtype: Annotated[str, typer.Option(
            "--input-dtype", help="synthetic input dtype: float32, or int64 for token ids")] = "float32",
        max_accuracy_drop: Annotated[float, typer.Option(
            "--max-accuracy-drop", help="allowed top-1 loss vs eager in points, with --data")] = 1.0,
        min_cosine: Annotated[float, typer.Option(
            "--min-cosine", help="minimum cosine to eager's output, without labels")] = 0.99,
        calibration_batches: Annotated[int, typer.Option("--calibration-batches", help="batches for static int8")] = 8,
        check_size: Annotated[int, typer.Option("--check-size", help="held-out samples checked")] = 256,
        random_calibration: Annotated[bool, typer.Option(
            "--random-calibration", help="calibrate static int8 on random inputs when no --data is given")] = False,
        quick: Annotated[bool, typer.Option(
            "--quick", help="no compiling backends (compile, torchao-x86), 1 warm-up and 10 timed calls")] = False,
        warmup: Annotated[Optional[int], typer.Option("--warmup", help="untimed calls (default 3; --quick 1)")] = None,
        repeats: Annotated[Optional[int], typer.Option(
            "--repeats", help="timed calls, 2 per interleaved round (default 20; --quick 10)")] = None,
        trust: Annotated[bool, typer.Option("--trust", help="allow code outside leandl's registry")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="print deploy.json only")] = False,
    ) -> None:
        """Measure the eligible backends on CKPT and write the fastest one within tolerance."""
        import os
        import tempfile

        from leandl.checkpoint import load
        from leandl.cli.bench import parse_names
        from leandl.cli.profile import parse_int_list
        from leandl.deploy.inputs import checkpoint_input_shape, deploy_inputs, model_vocab_size
        from leandl.deploy.select import format_selection, select_backend, write_deployment
        from leandl.errors import UsageError

        warmup = warmup if warmup is not None else (1 if quick else 3)
        repeats = repeats if repeats is not None else (10 if quick else 20)
        if repeats < 1 or warmup < 0 or calibration_batches < 1 or check_size < 1:
            raise UsageError("need --repeats >= 1, --warmup >= 0, --calibration-batches >= 1 and --check-size >= 1")
        if not 0.0 <= max_accuracy_drop <= 100.0:
            raise UsageError(f"--max-accuracy-drop is in points of top-1, 0 to 100; got {max_accuracy_drop}",
                             where="--max-accuracy-drop")
        if not -1.0 <= min_cosine <= 1.0:
            raise UsageError(f"--min-cosine must be in [-1, 1], got {min_cosine}", where="--min-cosine")
        names = parse_names(backends, "--backends") if backends is not None else None
        sizes = parse_int_list(batch_sizes, "--batch-sizes", "--batch-sizes 1,64")
        thr = parse_int_list(threads, "--threads", "--threads 2")
        shape = parse_int_list(input_shape, "--input-shape", "--input-shape 1,3,32,32", min_len=2) if input_shape else None
        model = load(ckpt, trust=trust)
        inputs = deploy_inputs(checkpoint_input_shape(ckpt, shape), data=data, root=root, check_size=check_size,
                               calibration=calibration_batches, dtype=input_dtype,
                               vocab_size=model_vocab_size(model), random_calibration=random_calibration)
        dest = out if out is not None else Path(ckpt) / "deploy"
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory() as tmp:  # every backend's files; only the chosen one is kept
            sel = select_backend(model, inputs.check, labels=inputs.labels, calibration=inputs.calibration,
                                 backends=names, batch_sizes=sizes, threads=thr,
                                 max_accuracy_drop=max_accuracy_drop / 100.0, min_cosine=min_cosine,
                                 include_slow=not quick, warmup=warmup, repeats=repeats, workdir=tmp)
            info = {"checkpoint": str(ckpt), "inputs": inputs.source, "calibration": inputs.calibration_source,
                    "batch_sizes": sizes, "threads": thr, "warmup": warmup, "repeats": repeats, "quick": quick,
                    "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()), "device": "cpu"}
            doc = write_deployment(sel, dest, checkpoint=ckpt, info=info)
        if as_json:
            print(json.dumps(doc, indent=2, default=str))
            return
        print(f"{ckpt}: inputs {inputs.source}, calibration {inputs.calibration_source}, device cpu, "
              f"load average {load_before[0]:.2f}")
        print(format_selection(sel))
        print(f"wrote {dest / 'deploy.json'}; deploy {doc['artifact']}: {doc['how_to_run']}")
