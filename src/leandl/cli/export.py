"""``leandl export CKPT --format onnx [--int8] [--out PATH]``: write a checkpoint as ONNX.

The fp32 file is checked against eager PyTorch (max abs diff, top-1 agreement and cosine on a
check batch are printed; every output of a model with several is compared). ``--int8`` also
writes a static int8 QDQ file (per-channel weights, ``--calibration-batches`` batches of
``--data`` training inputs), bias-corrected, next to it as ``NAME.int8.onnx``. Without
``--data`` there are no real inputs to calibrate on: ``--int8`` then needs
``--random-calibration`` (random inputs, which calibrate worse; it warns and the output says
``calibration: random (asked for)``). ``--input-dtype int64`` makes the synthetic check batch
token ids (uniform over the model's vocabulary; ``--input-shape 1,128`` for 128 tokens). Every
written file has been loaded and run by ONNX Runtime before it is reported.
For a QAT checkpoint, ``--int8`` writes its float twin as the fp32 file (trained quantised
weights, activations not quantised; :mod:`leandl.quantize.convert`) and quantises that, so
ONNX Runtime runs the int8 file on int8 kernels; both are checked against the fake-quant model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``export`` command."""

    @app.command("export")
    def export_cmd(
        ckpt: Annotated[str, typer.Argument(help="checkpoint directory (holds leandl.json)")],
        fmt: Annotated[str, typer.Option("--format", help="export format (onnx)")] = "onnx",
        int8: Annotated[bool, typer.Option("--int8", help="also write a static int8 QDQ model")] = False,
        out: Annotated[Optional[Path], typer.Option("--out", help="output .onnx path (default CKPT/model.onnx)")] = None,
        input_shape: Annotated[Optional[str], typer.Option("--input-shape", help="batch first, e.g. 1,3,32,32 (default: from the checkpoint)")] = None,
        data: Annotated[Optional[str], typer.Option("--data", help="calibration/check data set (default synthetic)")] = None,
        root: Annotated[Optional[str], typer.Option("--root", help="data directory")] = None,
        calibration_batches: Annotated[int, typer.Option("--calibration-batches")] = 8,
        opset: Annotated[int, typer.Option("--opset", help="ONNX opset (>= 13)")] = 17,
        random_calibration: Annotated[bool, typer.Option(
            "--random-calibration", help="calibrate --int8 on random inputs when no --data is given")] = False,
        input_dtype: Annotated[str, typer.Option(
            "--input-dtype", help="synthetic input dtype: float32, or int64 for token ids")] = "float32",
        trust: Annotated[bool, typer.Option("--trust", help="allow code outside leandl's registry")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    ) -> None:
        """Export CKPT to ONNX (and int8 with --int8), checked against eager PyTorch."""
        from leandl.checkpoint import load
        from leandl.cli.profile import parse_int_list
        from leandl.deploy import check_onnx, export_onnx, ptq_onnx
        from leandl.deploy.inputs import checkpoint_input_shape, deploy_inputs, model_vocab_size
        from leandl.errors import UsageError
        from leandl.quantize.convert import has_fake_quant

        if fmt != "onnx":
            raise UsageError(f"unsupported format '{fmt}'", where="--format", fix="use --format onnx")
        shape = parse_int_list(input_shape, "--input-shape", "--input-shape 1,3,32,32", min_len=2) if input_shape else None
        path = out or Path(ckpt) / "model.onnx"
        if path.suffix != ".onnx":
            raise UsageError(f"'{path}' does not end in .onnx", where="--out", fix="for example --out model.onnx")
        if int8 and data is None and not random_calibration:
            raise UsageError("--int8 needs calibration inputs", where="--data",
                             fix="name the training data (--data NAME), or accept random ones (--random-calibration)")
        model = load(ckpt, trust=trust)
        inputs = deploy_inputs(checkpoint_input_shape(ckpt, shape), data=data, root=root,
                               calibration=calibration_batches, dtype=input_dtype,
                               vocab_size=model_vocab_size(model), random_calibration=int8 and random_calibration)
        info: dict[str, object] = {"inputs": inputs.source}
        if int8:
            info["calibration"] = inputs.calibration_source
            if has_fake_quant(model):
                info["fp32_file"] = "float twin of the QAT model (quantised weights, float activations)"
            res = ptq_onnx(model, inputs.check[:2], path.parent, calibration=inputs.calibration,
                           fp32_name=path.name, int8_name=path.stem + ".int8.onnx", opset=opset)
            info.update(int8_onnx=str(res.int8_path), int8_size_bytes=res.int8_size_bytes, size_ratio=res.size_ratio,
                        stem_padding=res.stem_padding)
            q = check_onnx(model, res.int8_path, inputs.check)
            info.update(int8_max_abs_diff=q.max_abs_diff, int8_top1_agreement=q.top1_agreement,
                        int8_cosine=q.cosine)
        else:
            export_onnx(model, inputs.check[:2], path, opset=opset)
        check = check_onnx(model, path, inputs.check)
        info.update(onnx=str(path), size_bytes=path.stat().st_size, max_abs_diff=check.max_abs_diff,
                    top1_agreement=check.top1_agreement, cosine=check.cosine)
        if as_json:
            print(json.dumps(info, indent=2))
        else:
            for k, v in info.items():
                print(f"{k}: {v}")
