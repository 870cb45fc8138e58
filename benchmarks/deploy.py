"""Deployment chain on ResNet-56 (3x32x32, synthetic inputs): prune -> ONNX Runtime -> int8.

Variants, all timed at one batch size (default 64) and thread count (default 2), interleaved in
short rounds (:func:`leandl.measure.compare_latency`: per round and variant one warm-up call and
two timed calls; medians of per-round ratios; glibc heap kept steady, ORT workers not spinning):

    dense eager fp32 -> pruned eager fp32 -> pruned ORT fp32 -> pruned ORT int8 (static QDQ)

Pruning: ``leandl.prune_`` criterion l1, global scope, 50 % of the MACs kept, widths rounded to
multiples of ``--round-to`` (default 16; untrained weights: this measures speed, not accuracy).
Multiples of 16 matter for int8: ONNX Runtime's u8s8 GEMM kernels work on 16-wide column
panels, so 8-wide layers waste half of each panel (with multiples of 8 the int8 model was only
1.1x faster than fp32 here, with 16 about 1.5x). Int8: per-channel
weights, MinMax calibration on 8 synthetic batches, bias correction. Agreement of the int8
outputs with the pruned fp32 model (top-1, cosine) is reported as a sanity check only.

Acceptance (issue 8): ORT int8 throughput >= 1.5x ORT fp32, whole chain >= 4x dense eager.
``--seeds N`` repeats the whole comparison N times (different synthetic inputs and
calibration data). This CPU: AVX2, no VNNI (int8 gains are smaller than on VNNI CPUs).
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

CHAIN = ("dense_eager", "pruned_eager", "pruned_ort_fp32", "pruned_ort_int8")
FACTORS = (("prune (eager)", "dense_eager", "pruned_eager"), ("ONNX Runtime fp32", "pruned_eager", "pruned_ort_fp32"),
           ("int8 (ORT)", "pruned_ort_fp32", "pruned_ort_int8"), ("whole chain", "dense_eager", "pruned_ort_int8"))


def build_variants(seed: int, tmp: Path, threads: int, round_to: int) -> tuple[dict[str, object], dict[str, float]]:
    """The four callables and facts about them (MACs, sizes, agreement)."""
    import leandl
    from leandl.deploy import OrtModule, ptq_onnx
    from leandl.measure import count_macs
    from leandl.models import create_model

    torch.manual_seed(seed)
    dense = create_model("resnet56", num_classes=10, input_shape=(3, 32, 32)).eval()
    x1 = torch.randn(1, 3, 32, 32)
    pruned = copy.deepcopy(dense)
    leandl.prune_(pruned, x1, criterion="l1", target={"macs": 0.5}, scope="global",
                  round_to=round_to)
    pruned.eval()
    g = torch.Generator().manual_seed(seed + 1)
    cal = [torch.randn(32, 3, 32, 32, generator=g) for _ in range(8)]
    res = ptq_onnx(pruned, cal[0], tmp / f"s{seed}", calibration=cal)
    fp32, int8 = OrtModule(res.fp32_path, threads=threads), OrtModule(res.int8_path, threads=threads)
    check = torch.randn(64, 3, 32, 32, generator=g)
    with torch.no_grad():
        ref, q = pruned(check), int8(check)
    facts = {
        "macs_dense": float(count_macs(dense, x1).total), "macs_pruned": float(count_macs(pruned, x1).total),
        "onnx_fp32_bytes": float(res.fp32_size_bytes), "onnx_int8_bytes": float(res.int8_size_bytes),
        "int8_top1_agreement": float((ref.argmax(1) == q.argmax(1)).float().mean()),
        "int8_cosine": float(torch.nn.functional.cosine_similarity(ref, q, dim=1).mean()),
    }
    return {"dense_eager": dense, "pruned_eager": pruned, "pruned_ort_fp32": fp32, "pruned_ort_int8": int8}, facts


def main() -> None:
    p = base_parser("deploy", __doc__.splitlines()[0], seeds=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds per seed")
    p.add_argument("--round-to", type=int, default=16, help="prune widths to multiples of this")
    args = p.parse_args()
    from leandl.measure import compare_latency

    rounds, seeds = (4, 1) if args.quick else (args.rounds, args.seeds)
    ratios: dict[str, list[float]] = {name: [] for name, _, _ in FACTORS}
    ms: dict[str, list[float]] = {v: [] for v in CHAIN}
    facts_all: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            fns, facts = build_variants(seed, Path(tmp), args.threads, args.round_to)
            x = torch.randn(args.batch_size, 3, 32, 32)
            cmp = compare_latency(fns, x, rounds=rounds, warmup=1, repeats=2, threads=args.threads)
            for name, a, b in FACTORS:
                per_round = [ta / tb for ta, tb in zip(cmp.round_ms[a], cmp.round_ms[b])]
                ratios[name].append(sorted(per_round)[len(per_round) // 2])
            for v in CHAIN:
                ms[v].append(cmp.median_ms[v])
            for k, v in facts.items():
                facts_all.setdefault(k, []).append(v)
    from leandl.measure.allocator import allocator_state

    extra = {"batch_size": args.batch_size, "threads": args.threads, "device": "cpu (AVX2, no VNNI)",
             "rounds": rounds, "round_to": args.round_to, "allocator": allocator_state(),
             "quick": args.quick}
    rows = [row(v, "latency_ms", ms[v], units="ms per batch (median of rounds)", **extra) for v in CHAIN]
    rows += [row(v, "throughput", [args.batch_size / (t / 1000) for t in ms[v]], units="samples/s", **extra)
             for v in CHAIN]
    rows += [row(name, "speedup", ratios[name], units=f"x ({b} vs {a}), median per-round ratio", **extra)
             for name, a, b in FACTORS]
    rows += [row("pruned_ort_int8", k, v, units="count" if "macs" in k else ("bytes" if "bytes" in k else "fraction"),
                 **extra) for k, v in facts_all.items()]
    print_table(rows, f"ResNet-56 deployment chain, batch {args.batch_size}, {args.threads} threads")
    int8 = sum(ratios["int8 (ORT)"]) / len(ratios["int8 (ORT)"])
    chain = sum(ratios["whole chain"]) / len(ratios["whole chain"])
    print(f"\nacceptance: ORT int8 vs ORT fp32 {int8:.2f}x (need >= 1.5x): {'PASS' if int8 >= 1.5 else 'MISS'}; "
          f"whole chain {chain:.2f}x (need >= 4x): {'PASS' if chain >= 4 else 'MISS'}")
    write_rows(rows, args.out, "deploy")


if __name__ == "__main__":
    main()
