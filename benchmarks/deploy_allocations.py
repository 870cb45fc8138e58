"""Why ResNet-56 at 50 % MACs stops near 5.5-5.8x at batch 64: int8 time per stage and width allocation.

Issue 17 asks for >= 6x dense eager at batch 64 from "pruned to 50 % MACs + the best int8
backend". ``benchmarks/deploy.py`` measures the chain leandl's L1 pruning gives; this script asks
whether any other allocation of the same MACs would do better, and where the int8 time goes.

1. **Allocations.** ResNet-56 (random init) is pruned with explicit kept channels per group
   (``leandl.prune_(keep=...)``, the highest-L1 channels of each group): stage-1 inner width
   ``i1`` (its 16-channel stream is the stem's and is never pruned), stage-2/3 stream widths
   ``s2``/``s3`` and inner widths ``i2``/``i3``. Each runs as ONNX Runtime static int8
   (``leandl.deploy.ptq_onnx``) and torchao x86 int8, timed at batch 64, 2 threads, against
   dense eager in interleaved rounds (:func:`leandl.measure.compare_latency`); speed-up = median
   of per-round ratios, mean +- std over seeds.
2. **Profile.** ONNX Runtime's profiler splits the int8 time of the ``uniform16`` allocation
   (what ``prune_(target={"macs": 0.5}, round_to=16)`` gives) by op type and stage (output
   spatial size: 32x32 = stage 1, 16x16 = stage 2, 8x8 = stage 3).

Rows go to ``benchmarks/results/deploy_allocations.json``; the CPU is recorded in each row.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, finish_rows, print_table, row, write_rows  # noqa: E402

from leandl.measure import cpu_description  # noqa: E402

# name: (i1, s2, i2, s3, i3); dense is (16, 32, 32, 64, 64)
ALLOCATIONS = {
    "uniform16": (16, 16, 16, 32, 32),  # leandl's l1 / global / 50 % MACs / round_to 16
    "narrow_stream3": (16, 16, 16, 16, 64),
    "stagewise_half": (8, 32, 16, 64, 32),  # every stage's MACs halved (8-wide stage-1 convs)
    "inner8_stage1": (8, 16, 32, 16, 64),
    "deep_cut_30pct": (8, 16, 16, 16, 32),  # far below the target: where the floor is
}


def _keep(model: torch.nn.Module, x: torch.Tensor, alloc: tuple[int, ...]) -> dict[str, list[int]]:
    """Kept channel indices per group (highest L1 norm of the producing conv's filters)."""
    from leandl.prune.groups import channel_groups

    i1, s2, i2, s3, i3 = alloc
    modules = dict(model.named_modules())
    keep: dict[str, list[int]] = {}
    for g in channel_groups(model, x):
        stage, _, tail = g.name.partition(".")
        first_block = tail.startswith("0.")
        stream = first_block and g.name.endswith("conv2")
        width = {"layer1": i1, "layer2": s2 if stream else i2, "layer3": s3 if stream else i3}[stage]
        w = modules[g.name].weight.detach()
        order = w.abs().flatten(1).sum(1).argsort(descending=True)
        keep[g.name] = sorted(order[:width].tolist())
    return keep


def _variants(seed: int, tmp: Path, threads: int) -> tuple[dict[str, object], dict[str, float], dict[str, str]]:
    import leandl
    from leandl.deploy import OrtModule, ptq_onnx
    from leandl.measure import count_macs
    from leandl.models import create_model
    from leandl.registry import BACKENDS

    torch.manual_seed(seed)
    dense = create_model("resnet56", num_classes=10, input_shape=(3, 32, 32)).eval()
    x1 = torch.randn(1, 3, 32, 32)
    g = torch.Generator().manual_seed(seed + 1)
    cal = [torch.randn(32, 3, 32, 32, generator=g) for _ in range(8)]
    dense_macs = count_macs(dense, x1).total
    fns: dict[str, object] = {"dense_eager": dense}
    facts: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name, alloc in ALLOCATIONS.items():
        m = copy.deepcopy(dense)
        leandl.prune_(m, x1, keep=_keep(m, x1, alloc))
        m.eval()
        facts[f"{name}_macs_fraction"] = count_macs(m, x1).total / dense_macs
        res = ptq_onnx(m, cal[0], tmp / f"{name}{seed}", calibration=cal)
        fns[f"{name}_ort_int8"] = OrtModule(res.int8_path, threads=threads)
        if name == "uniform16":
            facts["_uniform16_int8_path"] = str(res.int8_path)  # type: ignore[assignment]
        why = BACKENDS.get("torchao-x86").unavailable()
        if why:
            skipped[f"{name}_torchao_x86"] = why
            continue
        built = BACKENDS.get("torchao-x86")().build(m, cal[0], cal, tmp / f"{name}{seed}_ao")
        fns[f"{name}_torchao_x86"] = built.runner(threads)
    return fns, facts, skipped


def _profile(path: str, threads: int, batch: int = 64) -> dict[str, float]:
    """Share of ONNX Runtime's kernel time per (op type, stage) of one int8 model."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "prof")
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        x = torch.randn(batch, 3, 32, 32).numpy()
        name = sess.get_inputs()[0].name
        for _ in range(25):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    stage_of = {32: "stage1", 16: "stage2", 8: "stage3"}
    share: dict[str, float] = collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        shape = next(iter(e["args"].get("output_type_shape", [{}])[0].values()), [])
        hw = [d for d in shape[1:] if d in stage_of]  # NHWC or NCHW: the first spatial size
        share[f"{e['args']['op_name']} {stage_of[hw[0]] if hw else 'other'}"] += e["dur"]
    total = sum(share.values())
    return {k: v / total for k, v in sorted(share.items(), key=lambda kv: -kv[1])}


def main() -> None:
    from leandl.measure import compare_latency

    p = base_parser("deploy_allocations", __doc__.splitlines()[0], seeds=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args()
    rounds, seeds = (3, 1) if args.quick else (args.rounds, args.seeds)
    load_before = os.getloadavg()
    ratios: dict[str, list[float]] = {}
    ms: dict[str, list[float]] = {}
    facts_all: dict[str, list[float]] = {}
    skipped: dict[str, str] = {}
    profile: dict[str, float] = {}
    x = torch.randn(64, 3, 32, 32)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            fns, facts, skip = _variants(seed, Path(tmp), args.threads)
            skipped.update(skip)
            if seed == 0:
                profile = _profile(facts.pop("_uniform16_int8_path"), args.threads)  # type: ignore[arg-type]
            else:
                facts.pop("_uniform16_int8_path")
            for k, v in facts.items():
                facts_all.setdefault(k, []).append(v)
            cmp = compare_latency(fns, x, rounds=rounds, warmup=1, repeats=2, threads=args.threads)
            for v in fns:
                ms.setdefault(v, []).append(cmp.median_ms[v])
                if v != "dense_eager":
                    per = sorted(a / b for a, b in zip(cmp.round_ms["dense_eager"], cmp.round_ms[v]))
                    ratios.setdefault(v, []).append(per[len(per) // 2])
    extra = {"threads": args.threads, "batch_size": 64, "rounds": rounds, "device": f"cpu: {cpu_description()}",
             "model": "resnet56", "quick": args.quick}
    rows = [row(v, "latency_ms", vals, units="ms per batch (median of rounds)", **extra) for v, vals in ms.items()]
    rows += [row(v, "speedup", vals, units="x vs dense_eager, median per-round ratio", **extra)
             for v, vals in ratios.items()]
    rows += [row(k, "macs_fraction", v, units="fraction of dense MACs", **extra) for k, v in facts_all.items()]
    rows += [row(f"uniform16 ORT int8 time: {k}", "share", [v], units="fraction of kernel time (seed 0)", **extra)
             for k, v in profile.items() if v >= 0.005]
    for r in rows:
        r["allocations"] = {k: dict(zip(("i1", "s2", "i2", "s3", "i3"), v, strict=True))
                            for k, v in ALLOCATIONS.items()}
    finish_rows(rows, load_before, skipped)
    load_after = rows[0]["loadavg_after"]
    print_table([r for r in rows if r["n"]], f"ResNet-56 width allocations at b64, {args.threads} threads, load "
                f"{load_before[0]:.1f} -> {load_after[0]:.1f}")
    best = max(ratios.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
    print(f"\nfastest allocation: {best[0]} {sum(best[1]) / len(best[1]):.2f}x dense eager at b64")
    stage1 = sum(v for k, v in profile.items() if k.endswith("stage1"))
    print(f"uniform16: stage 1 (32x32, 16 channels, never pruned) takes {stage1:.0%} of ORT int8 kernel time")
    write_rows(rows, args.out, "deploy_allocations")


if __name__ == "__main__":
    main()
