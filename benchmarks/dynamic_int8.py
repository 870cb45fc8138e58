"""Dynamic int8 (MatMul/Gemm only) on a BERT-style encoder: ONNX Runtime int8 vs fp32.

The encoder is built locally from ``transformers.BertConfig`` (random weights, no download;
BERT-small shape: 4 layers, hidden 512, 8 heads, FFN 2048, eager attention) when
``transformers`` imports, else leandl's ``vit_tiny``. Both are exported to ONNX (fp32) and
quantized with ``quantize_dynamic`` restricted to MatMul/Gemm; each ``--seeds`` run times the
two sessions in alternating rounds at batch 8, sequence 128, 2 threads, and compares outputs
by mean cosine similarity per token (fp32 vs int8).

Acceptance (issue 8): int8 >= 1.3x faster than fp32, mean cosine >= 0.99.
The CPU and its SIMD features are recorded in every row (``device``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

from leandl.measure import cpu_description  # noqa: E402


class _Encoder(nn.Module):
    """``input_ids -> last_hidden_state`` around a BertModel (one tensor in, one out)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids).last_hidden_state


def build_model(seed: int, quick: bool, seq: int) -> tuple[nn.Module, str, object]:
    """The encoder, its description and an input maker ``batch -> tensor``."""
    torch.manual_seed(seed)
    try:
        from transformers import BertConfig, BertModel

        layers, hidden = (2, 256) if quick else (4, 512)
        cfg = BertConfig(vocab_size=8000, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=hidden // 64, intermediate_size=4 * hidden,
                         max_position_embeddings=max(512, seq), attn_implementation="eager")
        model = _Encoder(BertModel(cfg, add_pooling_layer=False)).eval()
        desc = f"bert ({layers} layers, hidden {hidden}, transformers {__import__('transformers').__version__})"
        return model, desc, lambda b, g: torch.randint(0, cfg.vocab_size, (b, seq), generator=g)
    except ImportError:
        from leandl.models import create_model

        model = create_model("vit_tiny", num_classes=10, input_shape=(3, 32, 32)).eval()
        return model, "vit_tiny (transformers not installed)", lambda b, g: torch.randn(b, 3, 32, 32, generator=g)


def main() -> None:
    p = base_parser("dynamic_int8", __doc__.splitlines()[0], seeds=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    from leandl.deploy import OrtModule, op_counts, ptq_onnx
    from leandl.measure import compare_latency

    rounds, repeats, seeds = (2, 3, 1) if args.quick else (args.rounds, 10, args.seeds)
    speed, cos, ms_f, ms_q, sizes = [], [], [], [], []
    desc = ""
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            model, desc, make = build_model(seed, args.quick, args.seq)
            g = torch.Generator().manual_seed(seed)
            x = make(args.batch_size, g)
            res = ptq_onnx(model, x[:2], Path(tmp) / f"s{seed}", method="dynamic")
            assert "ConvInteger" not in op_counts(res.int8_path)
            fp32 = OrtModule(res.fp32_path, threads=args.threads)
            int8 = OrtModule(res.int8_path, threads=args.threads)
            a, b = fp32(x), int8(x)
            cos.append(float(torch.nn.functional.cosine_similarity(a.flatten(0, -2), b.flatten(0, -2), dim=-1).mean()))
            cmp = compare_latency({"fp32": fp32, "int8": int8}, x, rounds=rounds, warmup=2, repeats=repeats,
                                  threads=args.threads)
            speed.append(cmp.speedup_median["int8"])
            ms_f.append(cmp.median_ms["fp32"])
            ms_q.append(cmp.median_ms["int8"])
            sizes.append(res.size_ratio)
    extra = {"batch_size": args.batch_size, "seq": args.seq, "threads": args.threads, "model": desc,
             "device": f"cpu: {cpu_description()}", "quick": args.quick}
    rows = [row("ort_fp32", "latency_ms", ms_f, units="ms per batch", **extra),
            row("ort_dynamic_int8", "latency_ms", ms_q, units="ms per batch", **extra),
            row("ort_dynamic_int8", "speedup", speed, units="x vs ORT fp32 (median per-round ratio)", **extra),
            row("ort_dynamic_int8", "cosine", cos, units="mean cosine similarity to fp32 outputs", **extra),
            row("ort_dynamic_int8", "size_ratio", sizes, units="fp32 / int8 file bytes", **extra)]
    print_table(rows, f"dynamic int8 on {desc}, batch {args.batch_size}, seq {args.seq}, {args.threads} threads")
    s, c = sum(speed) / len(speed), sum(cos) / len(cos)
    print(f"\nacceptance: speed-up {s:.2f}x (need >= 1.3x): {'PASS' if s >= 1.3 else 'MISS'}; "
          f"cosine {c:.4f} (need >= 0.99): {'PASS' if c >= 0.99 else 'MISS'}")
    write_rows(rows, args.out, "dynamic_int8")


if __name__ == "__main__":
    main()
