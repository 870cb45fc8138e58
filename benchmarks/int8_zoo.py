"""Static int8 ONNX across real architectures (random init): does the file run, and how close is it?

For each model of ``benchmarks/_zoo_models.py`` (``--family hf``: the 8 Hugging Face families of
the pruning sweep; ``torchvision`` / ``timm``: their classification models, all or ``--only``
patterns / ``--subset``), in a subprocess with a time limit:

1. export fp32 ONNX (``leandl.deploy.export_onnx``; ONNX Runtime loads and runs it);
2. ``leandl.deploy.ptq_onnx(method="ptq")``: static QDQ int8, per-channel weights, MinMax
   calibration on 4 batches of 4 synthetic inputs (the models are random init and there is no
   data set for them: images standard normal, token ids uniform, full attention masks; labelled
   ``synthetic`` in the JSON), bias correction;
3. the int8 file is run by ONNX Runtime on 8 held-out synthetic inputs and compared with eager
   PyTorch on every output: top-1 agreement of the primary output (argmax over its last dim, per
   sample or per token), its cosine, max |diff|.

``--backend torchao`` does the same with leandl's ``torchao-x86`` backend (PT2E export, torchao's
x86 quantizer, calibration on the same batches, oneDNN lowering) into ``int8_zoo_torchao.json``.

Layers initialised to all zeros (the classifier heads of torchvision's ViTs and timm's
MLP-Mixer / ResMLP) get small random weights first (``reinit_zero_layers``, named in the row's
``reinit_zero_layers``): with a zero head every logit is 0 and the comparison would be vacuous.
Each row records the subprocess's peak resident memory (``peak_rss_bytes``).

A model passes when the int8 file runs in ONNX Runtime and its outputs have the eager shape
(agreement is reported, not judged: random-init logits are nearly tied, so top-1 agreement
understates a trained model's). Rows go to ``benchmarks/results/int8_zoo.json`` (with the load
average) and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# a representative subset of the vision models: plain/residual/grouped/depthwise convs, SE, attention
SUBSET = [  # cheapest first, so a run cut short under load still covers the most families
    "torchvision:resnet18", "torchvision:mobilenet_v2", "torchvision:mobilenet_v3_small", "torchvision:efficientnet_b0",
    "torchvision:squeezenet1_1", "torchvision:shufflenet_v2_x0_5", "torchvision:regnet_x_400mf",
    "torchvision:mnasnet0_5", "timm:lcnet_050", "timm:resnet18", "timm:mobilevit_xxs", "timm:ghostnet_100",
    "timm:repvgg_a0", "torchvision:googlenet", "torchvision:alexnet", "timm:deit_tiny_patch16_224",
    "torchvision:convnext_tiny", "timm:nfnet_l0", "torchvision:densenet121", "torchvision:vit_b_16",
]


def reinit_zero_layers(model: Any, seed: int) -> list[str]:
    """Give normal(0, 0.02) weights to the Linear/Conv layers initialised to all zeros; their names.

    torchvision's ViTs and timm's MLP-Mixer / ResMLP start with a zero classifier head, so their
    random-init logits are exactly 0 and any int8 file "agrees" with them (cosine 1 by
    convention): the check would be vacuous without this."""
    import torch

    g = torch.Generator().manual_seed(seed)
    names = []
    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)) and m.weight.numel() > 1 \
                and not m.weight.any():
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
            names.append(name)
    return names


def run_one(key: str, backend: str = "ort") -> dict:
    """Export, quantize and check one model (runs inside the subprocess)."""
    from leandl._compat_torchvision import import_torchvision

    import_torchvision()
    import tempfile
    import warnings

    import torch

    from _zoo_models import get_entry, make_inputs
    from leandl.deploy import OrtModule, compare_outputs, op_counts, ptq_onnx
    from leandl.deploy.io import call_model, primary_output
    from leandl.registry import BACKENDS

    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    entry = get_entry(key)
    rec: dict = {"model": key, "status": "failed", "stage": "build",
                 "calibration": "synthetic (4 x 4 random inputs; random-init model)"}
    t0 = time.perf_counter()
    model = entry.build(seed=0)
    rec["reinit_zero_layers"] = reinit_zero_layers(model, seed=0)
    example = make_inputs(entry, 2, seed=0)
    cal = [make_inputs(entry, 4, seed=1 + i) for i in range(4)]
    check = make_inputs(entry, 8, seed=99)
    with tempfile.TemporaryDirectory() as tmp:
        with torch.no_grad():
            ref = call_model(model, check)
        if backend == "torchao":
            rec["stage"] = "export + prepare + calibrate + convert"
            built = BACKENDS.get("torchao-x86")().build(model, example, cal, Path(tmp))
            rec.update(stage="lower + check", int8_bytes=built.size_bytes)
            run = built.runner(2)
        else:
            rec["stage"] = "export + static int8"
            res = ptq_onnx(model, example, Path(tmp), method="ptq", calibration=cal)
            ops = op_counts(res.int8_path)
            rec.update(fp32_bytes=res.fp32_size_bytes, int8_bytes=res.int8_size_bytes, stem_padding=res.stem_padding,
                       op_types=res.op_types, stage="check",
                       qdq_nodes=ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0))
            fp = compare_outputs(ref, call_model(OrtModule(res.fp32_path, threads=2, outputs="all"), check))
            rec.update(fp32_cosine=fp.cosine, fp32_top1_agreement=fp.top1_agreement)
            run = OrtModule(res.int8_path, threads=2, outputs="all")
        c = compare_outputs(ref, call_model(run, check))
    rec["eager_abs_max"] = float(primary_output(ref).abs().max())  # tiny random-init logits quantize to 0
    import resource

    rec.update(status="ok", stage="done", top1_agreement=c.top1_agreement, cosine=c.cosine,
               max_abs_diff=c.max_abs_diff, seconds=time.perf_counter() - t0,
               peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: KiB
    return rec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="hf", help="hf, torchvision, timm, or a comma list (default hf)")
    p.add_argument("--only", nargs="*", help="fnmatch patterns of model keys")
    p.add_argument("--subset", action="store_true", help="the representative vision subset (SUBSET) + hf")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per model")
    p.add_argument("--backend", choices=("ort", "torchao"), default="ort",
                   help="ort: static QDQ int8 ONNX in ONNX Runtime (default); torchao: torchao's x86 int8 lowering")
    p.add_argument("--out", type=Path, help="default results/int8_zoo.json (torchao: int8_zoo_torchao.json)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--summarize", action="store_true",
                   help="recompute the per-family counts of --out's rows (nothing is run; run facts kept)")
    p.add_argument("--quick", action="store_true", help="hf:bert and torchvision:resnet18 only")
    p.add_argument("--keep", action="store_true",
                   help="keep the rows of --out and run only the models it lacks, or with --only the named ones "
                        "again (the JSON is rewritten after each)")
    args = p.parse_args()
    if args.out is None:
        args.out = HERE / "results" / ("int8_zoo.json" if args.backend == "ort" else "int8_zoo_torchao.json")
    if args.summarize:
        doc = json.loads(args.out.read_text())
        doc["summary"].update(_counts(doc["rows"]))
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"{args.out}: " + ", ".join(f"{f} {v}" for f, v in doc["summary"]["works"].items()))
        return
    if args.one:
        try:
            rec = run_one(args.one, args.backend)
        except Exception as exc:  # reported as a row, never a crash of the sweep
            rec = {"model": args.one, "status": "failed",
                   "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"}
        print("RESULT " + json.dumps(rec))
        return
    from _zoo_models import all_entries, select

    if args.quick:
        keys = ["hf:bert", "torchvision:resnet18"]
    elif args.subset:
        keys = [e.key for e in all_entries(["hf"])] + SUBSET
    else:
        keys = [e.key for e in select(all_entries(args.family.split(",")), args.only)]
    load_before = os.getloadavg()
    rows: list[dict] = []
    if args.keep and args.out.is_file():
        rows = [r for r in json.loads(args.out.read_text())["rows"] if r["status"] == "ok"]
        if args.only:  # the named models are run again and replace their rows
            rows = [r for r in rows if r["model"] not in keys]
        done = {r["model"] for r in rows}
        keys = [k for k in keys if k not in done]
    for key in keys:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, __file__, "--one", key, "--backend", args.backend],
                                  capture_output=True, text=True,
                                  timeout=args.timeout, cwd=str(HERE))
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            rec = json.loads(line[7:]) if line else {
                "model": key, "status": "failed",
                "error": f"exit {proc.returncode}: {' '.join(proc.stderr.split()[-40:])[:500]}"}
        except subprocess.TimeoutExpired:
            rec = {"model": key, "status": "timeout", "error": f"over {args.timeout:.0f} s"}
        rec["wall_s"] = time.perf_counter() - t0
        rec["loadavg"] = os.getloadavg()[0]
        rows.append(rec)
        print(f"{key:<40} {rec['status']:<8} top1 {rec.get('top1_agreement', float('nan')):.3f} "
              f"cos {rec.get('cosine', float('nan')):.5f} {rec.get('error', '')[:120]}", flush=True)
        _write(args, rows, load_before)
    _write(args, rows, load_before, show=True)


def _counts(rows: list[dict]) -> dict:
    """Per family: ``works`` ("ok/total"), ``counts`` and the cosine ``min``/``median``/``at_least_099``."""
    ok = [r for r in rows if r["status"] == "ok"]
    fams = list(dict.fromkeys(r["model"].split(":")[0] for r in rows))
    counts = {f: {"ok": sum(r["model"].startswith(f + ":") for r in ok),
                  "total": sum(r["model"].startswith(f + ":") for r in rows)} for f in fams}
    cosine = {}
    for f in fams:
        cos = sorted(r["cosine"] for r in ok if r["model"].startswith(f + ":"))
        if cos:
            cosine[f] = {"min": cos[0], "median": cos[len(cos) // 2], "at_least_099": sum(c >= 0.99 for c in cos)}
    return {"works": {f: f"{c['ok']}/{c['total']}" for f, c in counts.items()}, "counts": counts, "cosine": cosine,
            "cosine_threshold": 0.99}


def _write(args: argparse.Namespace, rows: list[dict], load_before: tuple[float, ...], show: bool = False) -> None:
    """Summarise ``rows`` into ``args.out`` (and print the table when ``show``)."""
    from _common import versions

    ok = [r for r in rows if r["status"] == "ok"]
    summary = {"benchmark": "int8_zoo", "backend": args.backend, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "versions": versions(), "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
               "threads": 2, **_counts(rows),
               "selection": "quick" if args.quick else ("subset" if args.subset else args.family),
               "note": "random-init models, synthetic calibration and check inputs; top-1 agreement of "
                       "random-init logits understates a trained model's"}
    if not show:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")
        return
    what = "static int8 ONNX runs in ONNX Runtime" if args.backend == "ort" else "torchao x86 int8 runs"
    print(f"\n{what}: " + ", ".join(f"{f} {v}" for f, v in summary["works"].items()))
    print(f"{'model':<40} {'top1 agr':>8} {'cosine':>9} {'int8 MB':>8} {'fp32/int8':>9}")
    for r in ok:
        ratio = f"{r['fp32_bytes'] / r['int8_bytes']:>9.2f}" if r.get("fp32_bytes") else f"{'-':>9}"
        print(f"{r['model']:<40} {r['top1_agreement']:>8.3f} {r['cosine']:>9.5f} {r['int8_bytes'] / 1e6:>8.2f} {ratio}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
