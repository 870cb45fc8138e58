"""Model zoo: leandl vs Torch-Pruning 1.6.1 at 50 % of the MACs on torchvision, timm and HF models.

Every torchvision classification model, 30 timm architectures and 8 small Hugging Face
transformers families (see ``_zoo_models.py``), random init. Each model and tool runs in its
own subprocess (``zoo.py --one FAMILY:NAME --tool leandl|tp``) under a time limit; a crash, a
hang or an out-of-memory kill is recorded as that model's failure, never the run's.

Per model and tool:

- ``prune_ok``: pruning raised nothing (else the error's first line).
  leandl: ``leandl.prune_(model, example_inputs, criterion="l1", target={"macs": 0.5},
  round_to=8)`` (global scope, its default). Torch-Pruning: ``MetaPruner`` with
  ``GroupMagnitudeImportance(p=1)``, ``round_to=8``, ``global_pruning=True``,
  ``max_pruning_ratio=0.9`` (leandl's default max_ratio), the classifier ignored, attention heads
  declared as in TP's own examples; its ``pruning_ratio`` is bisected until TP's own counter
  (``tp.utils.count_ops_and_params``) reads 50 % of the MACs.
- ``macs_fraction``: MACs after / before at batch 1, both tools counted with the SAME counter:
  ``leandl.measure.count_macs`` (FlopCounterMode FLOPs / 2 under no_grad); dict inputs (HF
  models) go through an identical FlopCounterMode count in this file. That counter sees 0 MACs
  in two fused CPU kernels: ``_native_multi_head_attention`` (nn.MultiheadAttention's eval
  fast path under no_grad, i.e. torchvision's ViTs: projections AND attention uncounted) and
  ``_scaled_dot_product_flash_attention_for_cpu`` (SDPA). ``macs_fraction_full`` therefore
  counts again with grad enabled (no MHA fast path) and an SDPA formula; both are recorded,
  ``--verdict-counter`` picks the one that decides the verdict (default: ``full``, since leandl
  aims at its own counter and lands at 0.68 of the full count on torchvision's ViT-B/16).
- ``landed``: ``|macs_fraction - 0.5| <= 0.02`` (``landed_full`` likewise for the full count);
  ``shape_kept``: every output tensor has its dense shape; ``forward_ok``: batch 1 and batch 8
  run and give finite outputs (where the dense model's do).
- ``saveload_max_abs_diff``: leandl: ``leandl.save`` then ``leandl.load`` (HF models are built as
  ``"hf:ClassName"`` + config where leandl has that adapter, else through ``_zoo_models:build_hf``,
  user code that needs ``trust=True``); TP: what its README documents, ``torch.save(model)`` /
  ``torch.load(weights_only=False)`` of the whole pickled module (its alternative,
  ``tp.state_dict`` -> ``tp.load_state_dict`` into a fresh unpruned model, is recorded beside it
  as ``tp_state_dict_max_abs_diff`` / ``tp_state_dict_error``, not used for the verdict).
- ``onnx_ok``: ``torch.onnx.export(..., dynamo=False)`` (fp32, opset 17) and one onnxruntime run;
  ``onnx_max_abs_diff`` against eager.
- ``latency_ratio``: pruned / dense eager latency at batch 8, 2 threads, the two interleaved
  in rounds (default 10 rounds of 1 warm-up + 3 timed calls; fewer for slow models), median of
  the per-round ratios. Speed-up = 1 / ratio.

Output: ``--out`` (default ``benchmarks/results/zoo.json``) holds the summary rows (pruned / total
and median eager speed-up per family and tool) and one compact row per model and tool;
``zoo.records.json`` beside it holds every run's full record (errors, bisection trail, per-round
latency ratios, load average), rewritten after each model, which ``--resume`` continues from.

A model counts as **pruned** when prune_ok, landed (by the verdict counter), shape_kept,
forward_ok and save/load diff <= 1e-5 all hold. ONNX and latency are reported, not judged.

    python benchmarks/zoo.py [--family torchvision|timm|hf ...] [--only PATTERN ...] [--quick]
    python benchmarks/zoo.py --one timm:resnet18 --tool tp      # one model, one tool, JSON out
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from _common import base_parser, print_table, row, versions, write_rows  # noqa: E402
import _zoo_models as zm  # noqa: E402

NAME = "zoo"
GOAL = 0.5  # fraction of the MACs kept
TOL = 0.02  # |achieved - GOAL| <= TOL counts as landed
SAVELOAD_TOL = 1e-5
TOOLS = ("leandl", "tp")
STAGES = ("prune_ok", "landed_full", "landed", "shape_kept", "forward_ok", "saveload_ok", "onnx_ok")


# ---------------------------------------------------------------------------------------------
# helpers shared by the worker
# ---------------------------------------------------------------------------------------------

def first_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}"[:300]


def call(model: Any, inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def tensors_of(out: Any) -> list[torch.Tensor]:
    """Every tensor in a (nested) output: tensors, tuples, lists, dicts, HF ModelOutputs."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):  # ModelOutput is an OrderedDict of its non-None fields
        return [t for v in out.values() for t in tensors_of(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in tensors_of(v)]
    return []


def max_abs_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Largest |a - b| over matching tensors (NaN where both are NaN counts as equal)."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return float("inf")
    worst = 0.0
    for x, y in zip(a, b):
        x, y = x.detach().float(), y.detach().float()
        both_nan = torch.isnan(x) & torch.isnan(y)
        d = torch.where(both_nan, torch.zeros_like(x), (x - y).abs())
        d = torch.nan_to_num(d, nan=float("inf"))
        if d.numel():
            worst = max(worst, float(d.max()))
    return worst


def count_macs(model: nn.Module, inputs: Any) -> tuple[int, str]:
    """MACs at these inputs with leandl's definition (FlopCounterMode FLOPs / 2)."""
    if not isinstance(inputs, dict):
        from leandl.measure import count_macs as leandl_count

        return int(leandl_count(model, inputs).total), "leandl.measure.count_macs"
    from torch.utils.flop_counter import FlopCounterMode

    was = {m: m.training for m in model.modules()}
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            call(model, inputs)
    finally:
        for m, t in was.items():
            m.training = t
    return int(counter.get_total_flops()) // 2, "FlopCounterMode/2 (same as leandl.count_macs, dict inputs)"


def _cpu_sdpa_flops(q, k, v, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(q, k, v)


def count_macs_full(model: nn.Module, inputs: Any) -> int:
    """MACs with nothing hidden: FlopCounterMode/2 with grad enabled (so nn.MultiheadAttention /
    TransformerEncoderLayer take their unfused path, whose projections are counted; under
    no_grad their fused ``_native_multi_head_attention`` kernel counts as 0) and a formula for
    CPU SDPA (``_scaled_dot_product_flash_attention_for_cpu``, which FlopCounterMode counts
    as 0)."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    # on a throwaway copy: a forward with grad enabled can leave non-leaf tensors cached on
    # modules (timm LeViT's attention-bias cache), which deepcopy then refuses
    model = copy.deepcopy(model).eval()
    counter = FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops})
    with torch.enable_grad(), counter:
        call(model, inputs)
    del model
    return int(counter.get_total_flops()) // 2


class _KwWrap(nn.Module):
    """Positional tensors -> keyword call; output flattened to a tuple (for ONNX)."""

    def __init__(self, model: nn.Module, keys: list[str] | None):
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, *args):  # noqa: D401
        out = self.model(**dict(zip(self.keys, args))) if self.keys else self.model(*args)
        return tuple(tensors_of(out))


def as_positional(inputs: Any) -> tuple[list[str] | None, tuple[torch.Tensor, ...]]:
    if isinstance(inputs, dict):
        return list(inputs), tuple(inputs.values())
    if isinstance(inputs, (tuple, list)):
        return None, tuple(inputs)
    return None, (inputs,)


# ---------------------------------------------------------------------------------------------
# Torch-Pruning
# ---------------------------------------------------------------------------------------------

def tp_prune_once(model: nn.Module, entry: zm.Entry, x1: Any, ratio: float, scope: str) -> dict:
    import torch_pruning as tp

    s = zm.tp_settings(entry, model)
    for p in model.parameters():
        p.requires_grad_(True)
    kw: dict[str, Any] = dict(
        importance=tp.importance.GroupMagnitudeImportance(p=1),
        global_pruning=scope == "global", pruning_ratio=ratio, max_pruning_ratio=0.9,
        round_to=s.round_to, ignored_layers=s.ignored_layers)
    if s.num_heads:
        kw.update(num_heads=s.num_heads, prune_num_heads=s.prune_num_heads,
                  prune_head_dims=s.prune_head_dims,
                  head_pruning_ratio=ratio if s.prune_num_heads else 0.0)
    with torch.enable_grad():
        pruner = tp.pruner.MetaPruner(model, x1, **kw)
        pruner.step()
    if s.post_fix is not None:
        s.post_fix(model, pruner)
    # requires_grad stays True, as in a freshly built model (False would switch torchvision's
    # MultiheadAttention to its fused fast path, which the ONNX exporter does not support)
    return {"round_to": s.round_to, "notes": s.notes, "num_heads_declared": len(s.num_heads),
            "ignored_layers": len(s.ignored_layers)}


def tp_prune(dense: nn.Module, entry: zm.Entry, x1: Any, scope: str, search_counter: str,
             max_iter: int = 9) -> tuple[nn.Module, dict]:
    """Bisect TP's pruning_ratio until the search counter reads GOAL (TP's counter by default)."""
    import torch_pruning as tp

    def measure(m: nn.Module) -> float:
        if search_counter == "tp":
            return float(tp.utils.count_ops_and_params(m, x1)[0])
        if search_counter == "full":
            return float(count_macs_full(m, x1))
        return float(count_macs(m, x1)[0])

    base = measure(dense)
    lo, hi = 0.0, 0.9
    best: tuple[float, nn.Module, float, float, dict] | None = None
    trail = []
    for _ in range(max_iter):
        r = (lo + hi) / 2
        m = copy.deepcopy(dense)
        info = tp_prune_once(m, entry, x1, r, scope)
        try:
            frac = measure(m) / base
        except Exception as exc:
            raise RuntimeError(f"the pruned model's forward fails (ratio {r:.3f}): "
                               f"{first_line(exc)}") from exc
        trail.append([round(r, 5), round(frac, 5)])
        err = abs(frac - GOAL)
        if best is None or err < best[0]:
            best = (err, m, r, frac, info)
        del m
        if err <= 0.005:
            break
        lo, hi = (r, hi) if frac > GOAL else (lo, r)
    assert best is not None
    _, m, r, frac, info = best
    return m, {"pruning_ratio": r, "search_counter": search_counter,
               "search_counter_fraction": frac, "bisection": trail, **info}


# ---------------------------------------------------------------------------------------------
# the worker: one model, one tool
# ---------------------------------------------------------------------------------------------

class Recorder:
    """The record of one run, rewritten to a file after every stage (survives a kill)."""

    def __init__(self, path: Path | None, rec: dict):
        self.path, self.rec = path, rec

    def update(self, **kw: Any) -> None:
        self.rec.update(kw)
        if self.path is not None:
            tmp = self.path.with_suffix(".part")
            tmp.write_text(json.dumps(self.rec, default=str))
            os.replace(tmp, self.path)


def latency_ratio(dense: nn.Module, pruned: nn.Module, x8: Any, rounds: int,
                  budget_s: float) -> dict:
    """Pruned / dense eager latency at batch 8, 2 threads, interleaved rounds (leandl's
    compare_latency); fewer rounds and calls when one dense call is slow."""
    from leandl.measure import compare_latency

    keys, args = as_positional(x8)
    if keys:
        fd = lambda *a: dense(**dict(zip(keys, a)))  # noqa: E731
        fp = lambda *a: pruned(**dict(zip(keys, a)))  # noqa: E731
    else:
        fd, fp = dense, pruned
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            fd(*args)
            t_call = float("inf")
            for _ in range(2):  # the faster of two calls: a busy neighbour only adds time
                t0 = time.perf_counter()
                fd(*args)
                t_call = min(t_call, time.perf_counter() - t0)
                if t_call > budget_s / 8:
                    break
    finally:
        torch.set_num_threads(prev)
    warmup, repeats = 1, 3
    if t_call * 2 * (warmup + repeats) * rounds > budget_s:
        warmup, repeats = 1, 1
        rounds = max(5, min(rounds, int(budget_s / (2 * 2 * t_call))))
    if t_call * 2 * (3 + rounds * (warmup + repeats)) > 4 * budget_s:
        warmup, rounds = 0, 3  # very slow models: 3 rounds of one call each
    if t_call * 2 * (3 + rounds * (warmup + repeats)) > 3 * budget_s:
        return {"latency_skipped": f"one dense batch-8 call takes {t_call:.1f} s",
                "dense_call_s": t_call}
    with torch.no_grad():
        res = compare_latency({"dense": fd, "pruned": fp}, args, rounds=rounds, warmup=warmup,
                              repeats=repeats, threads=2)
    ratios = [p / d for p, d in zip(res.round_ms["pruned"], res.round_ms["dense"])]
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    dm = res.round_ms["dense"]
    return {"latency_ratio": statistics.median(ratios), "latency_round_ratios": ratios,
            "latency_ratio_iqr": q[2] - q[0], "dense_round_spread": max(dm) / min(dm),
            # contention only ever adds time: the fastest rounds' ratio is a steadier second view
            "latency_ratio_of_fastest": min(res.round_ms["pruned"]) / min(dm),
            "loadavg_1min": os.getloadavg()[0],
            "dense_ms_b8": res.median_ms["dense"], "pruned_ms_b8": res.median_ms["pruned"],
            "latency_rounds": rounds, "latency_calls": [warmup, repeats]}


def onnx_check(model: nn.Module, x1: Any, eager_out: list[torch.Tensor]) -> dict:
    import numpy as np
    import onnxruntime as ort

    keys, args = as_positional(x1)
    wrap = _KwWrap(model, keys).eval()
    names = keys or [f"input{i}" for i in range(len(args))]
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "model.onnx")
        torch.onnx.export(wrap, args, f, dynamo=False, opset_version=17, input_names=names,
                          do_constant_folding=True)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        sess = ort.InferenceSession(f, so, providers=["CPUExecutionProvider"])
        feed = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
        outs = sess.run(None, feed)
    got = [torch.from_numpy(np.asarray(o)) for o in outs]
    return {"onnx_ok": True, "onnx_max_abs_diff": max_abs_diff(got, eager_out)
            if len(got) == len(eager_out) else None}


def tp_state_dict_roundtrip(model: nn.Module, entry: zm.Entry, seed: int, x1: Any,
                            pruned_out: list[torch.Tensor], d: Path) -> dict:
    """TP's other documented path: tp.state_dict -> torch.save/load -> tp.load_state_dict into a
    freshly built unpruned model (informational; not part of the 'pruned' verdict)."""
    import torch_pruning as tp

    try:
        f = d / "tp_state.pth"
        torch.save(tp.state_dict(model), f)
        loaded = tp.load_state_dict(entry.build(seed), torch.load(f, weights_only=False)).eval()
        with torch.no_grad():
            diff = max_abs_diff(tensors_of(call(loaded, x1)), pruned_out)
        f.unlink()
        return {"tp_state_dict_max_abs_diff": diff}
    except Exception as exc:
        return {"tp_state_dict_error": first_line(exc)}


def run_one(key: str, tool: str, seed: int, args: argparse.Namespace,
            out: Path | None) -> dict:
    torch.set_num_threads(2)
    entry = zm.get_entry(key, full_res=args.full_res)
    if entry.family == "timm" and not args.timm_fused_attn:
        # TP's prune_timm_models.py sets this; both tools get the same model (and the MAC
        # counter sees the attention matmuls, which it does not count inside CPU SDPA kernels)
        os.environ.setdefault("TIMM_FUSED_ATTN", "0")
    r = Recorder(out, {"model": key, "family": entry.family, "name": entry.name, "tool": tool,
                       "seed": seed, "image_size": entry.image_size, "stage": "build",
                       "error": None})
    t_all = time.perf_counter()
    # --- build ---------------------------------------------------------------------------
    try:
        model = entry.build(seed)
        x1 = zm.make_inputs(entry, 1, seed)
        x8 = zm.make_inputs(entry, 8, seed + 1)
        with torch.no_grad():
            dense_out = tensors_of(call(model, x1))
        macs0, counter = count_macs(model, x1)
        macs0_full = count_macs_full(model, x1)
        dense = copy.deepcopy(model)
    except Exception as exc:
        r.update(stage="build", error=f"build: {first_line(exc)}", traceback=traceback.format_exc(limit=-3))
        return r.rec
    r.update(stage="prune", macs_before=macs0, macs_counter=counter, macs_before_full=macs0_full,
             params_before=sum(p.numel() for p in model.parameters()),
             dense_finite=all(bool(torch.isfinite(t).all()) for t in dense_out))
    # --- prune ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    try:
        if tool == "leandl":
            import leandl

            rep = leandl.prune_(model, x1, criterion="l1", target={"macs": GOAL}, round_to=8)
            info = {"tool_achieved": getattr(rep, "achieved", None),
                    "tool_macs_before": getattr(rep, "macs_before", None),
                    "tool_macs_after": getattr(rep, "macs_after", None)}
        else:
            model, info = tp_prune(model, entry, x1, args.tp_scope, args.tp_search_counter)
        model.eval()
    except Exception as exc:
        r.update(prune_ok=False, prune_s=time.perf_counter() - t0,
                 error=f"prune: {first_line(exc)}", traceback=traceback.format_exc(limit=-4))
        return r.rec
    r.update(prune_ok=True, prune_s=time.perf_counter() - t0, stage="measure", **info)
    # --- MACs, shape, forward ----------------------------------------------------------------
    errors = []  # failures of the verdict's criteria, in order
    notes = []  # failures outside the verdict (ONNX, latency, the full counter)
    try:
        macs1 = count_macs(model, x1)[0]
        frac = macs1 / macs0
        r.update(macs_after=macs1, macs_fraction=frac, landed=abs(frac - GOAL) <= TOL,
                 params_after=sum(p.numel() for p in model.parameters()))
    except Exception as exc:
        notes.append(f"macs: {first_line(exc)}")
        r.update(landed=False)
    try:
        full = count_macs_full(model, x1) / macs0_full
        r.update(macs_fraction_full=full, landed_full=abs(full - GOAL) <= TOL)
    except Exception as exc:
        notes.append(f"full counter: {first_line(exc)}")
        r.update(landed_full=False)
    key = "macs_fraction" if args.verdict_counter == "leandl" else "macs_fraction_full"
    got = r.rec.get(key)
    if not isinstance(got, float) or abs(got - GOAL) > TOL:
        tool_frac = r.rec.get("search_counter_fraction") or (r.rec.get("tool_achieved") or {}).get("macs")
        errors.append(f"target: {key} {got:.3f}" if isinstance(got, float) else f"target: no {key}")
        if tool_frac:
            errors[-1] += f" (the tool's own count: {tool_frac:.3f})"
    pruned_out: list[torch.Tensor] = []
    try:
        with torch.no_grad():
            pruned_out = tensors_of(call(model, x1))
            out8 = tensors_of(call(model, x8))
        shapes0 = [list(t.shape) for t in dense_out]
        shapes1 = [list(t.shape) for t in pruned_out]
        finite = all(bool(torch.isfinite(t).all()) for t in pruned_out + out8)
        r.update(shape_kept=shapes0 == shapes1, output_shapes=shapes1,
                 forward_ok=finite or not r.rec["dense_finite"])
        if shapes0 != shapes1:
            errors.append(f"shape: {shapes0} -> {shapes1}")
        if not finite and r.rec["dense_finite"]:
            errors.append("forward: non-finite outputs")
    except Exception as exc:
        r.update(shape_kept=False, forward_ok=False)
        errors.append(f"forward: {first_line(exc)}")
    r.update(stage="saveload")
    # --- save / load -------------------------------------------------------------------------
    try:
        with tempfile.TemporaryDirectory() as d:
            if tool == "leandl":
                import leandl

                leandl.save(model, Path(d) / "ckpt")
                trust = entry.needs_trust()
                loaded = leandl.load(Path(d) / "ckpt", trust=trust)
                how = "leandl.save/leandl.load" + (" (trust=True)" if trust else "")
            else:
                # TP's README: torch.save(model) / torch.load (the whole pickled module); its
                # alternative tp.state_dict -> tp.load_state_dict is recorded beside it.
                r.update(**tp_state_dict_roundtrip(model, entry, seed, x1, pruned_out, Path(d)))
                f = Path(d) / "model.pth"
                model.zero_grad()
                torch.save(model, f)
                loaded = torch.load(f, weights_only=False)
                how = "torch.save(model)/torch.load(weights_only=False) (TP README)"
            loaded.eval()
            with torch.no_grad():
                diff = max_abs_diff(tensors_of(call(loaded, x1)), pruned_out)
            del loaded
        r.update(saveload_max_abs_diff=diff, saveload_ok=diff <= SAVELOAD_TOL, saveload_how=how)
        if diff > SAVELOAD_TOL:
            errors.append(f"saveload: max abs diff {diff:.3g}")
    except Exception as exc:
        r.update(saveload_ok=False)
        errors.append(f"saveload: {first_line(exc)}")
    landed = r.rec.get("landed" if args.verdict_counter == "leandl" else "landed_full")
    pruned = bool(r.rec.get("prune_ok") and landed and r.rec.get("shape_kept")
                  and r.rec.get("forward_ok") and r.rec.get("saveload_ok"))
    r.update(stage="onnx", errors=errors, notes=notes, pruned=pruned,
             error=None if pruned else (errors[0] if errors else "not pruned"))
    # --- ONNX --------------------------------------------------------------------------------
    if not args.no_onnx:
        try:
            r.update(**onnx_check(model, x1, pruned_out))
        except Exception as exc:
            r.update(onnx_ok=False)
            notes.append(f"onnx: {first_line(exc)}")
    r.update(stage="latency", notes=notes)
    # --- latency -----------------------------------------------------------------------------
    if not args.no_latency:
        try:
            r.update(**latency_ratio(dense, model, x8, args.latency_rounds, args.latency_budget))
        except Exception as exc:
            notes.append(f"latency: {first_line(exc)}")
    r.update(stage="done", notes=notes, worker_s=time.perf_counter() - t_all)
    return r.rec


# ---------------------------------------------------------------------------------------------
# the orchestrator
# ---------------------------------------------------------------------------------------------

def spawn(entry: zm.Entry, tool: str, seed: int, args: argparse.Namespace) -> dict:
    """Run one model/tool in a subprocess under a time limit; whatever it recorded comes back."""
    timeout = args.timeout * entry.time_scale()
    with tempfile.TemporaryDirectory() as d:
        rec_path = Path(d) / "record.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", entry.key, "--tool", tool,
               "--seed", str(seed), "--record", str(rec_path), "--tp-scope", args.tp_scope,
               "--tp-search-counter", args.tp_search_counter,
               "--verdict-counter", args.verdict_counter,
               "--latency-rounds", str(args.latency_rounds),
               "--latency-budget", str(args.latency_budget)]
        for flag in ("full_res", "no_onnx", "no_latency", "timm_fused_attn"):
            if getattr(args, flag):
                cmd.append("--" + flag.replace("_", "-"))
        env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONWARNINGS="ignore")
        t0 = time.perf_counter()
        fail = None
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                                  cwd=str(HERE.parent))
            if proc.returncode != 0:
                tail = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
                fail = f"worker exit {proc.returncode}: {tail[-1][:300] if tail else ''}"
        except subprocess.TimeoutExpired:
            fail = f"timeout after {timeout:.0f} s"
        wall = time.perf_counter() - t0
        rec = json.loads(rec_path.read_text()) if rec_path.exists() else {
            "model": entry.key, "family": entry.family, "name": entry.name, "tool": tool,
            "seed": seed, "stage": "start"}
    rec["wall_s"] = wall
    rec["timeout_s"] = timeout
    if fail is not None and rec.get("stage") != "done":
        rec["killed"] = f"{rec.get('stage')}: {fail}"
        if "pruned" in rec:  # the verdict was in before the kill (during ONNX or latency)
            rec.setdefault("notes", []).append(rec["killed"])
        else:
            rec["error"] = rec.get("error") or rec["killed"]
    rec.setdefault("pruned", False)
    return rec


def status_line(rec: dict) -> str:
    fr = [rec.get(k) for k in ("macs_fraction", "macs_fraction_full")]
    f = (f"macs {fr[0]:.3f} (full {fr[1]:.3f}) " if all(isinstance(v, float) for v in fr)
         else f"macs {fr[0]:.3f} " if isinstance(fr[0], float) else "")
    if rec.get("pruned"):
        lat = rec.get("latency_ratio")
        return f"PRUNED {f}" + (f"speed-up {1 / lat:.2f}x" if lat else "")
    return f"not pruned {f}-- {rec.get('error')}"


def fmt(v: Any, spec: str = ".3f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "y" if v else "n"
    if isinstance(v, float):
        return format(v, spec) if math.isfinite(v) else str(v)
    return str(v)


def summarise(records: list[dict], families: list[str], tools: list[str]) -> tuple[list[dict], list[str]]:
    """Rows for the JSON and lines for the console."""
    rows: list[dict] = []
    lines = []
    head = (f"{'family':<12} {'tool':<7} {'pruned':>9}  "
            + "  ".join(f"{s[:-3] if s.endswith('_ok') else s:>9}" for s in STAGES)
            + "  median speed-up (pruned models)")
    lines.append(head)
    for fam in families + ["all"]:
        for tool in tools:
            recs = [r for r in records if r["tool"] == tool and (fam == "all" or r["family"] == fam)]
            if not recs:
                continue
            n = len(recs)
            pruned = [1.0 if r.get("pruned") else 0.0 for r in recs]
            counts = {s: sum(1 for r in recs if r.get(s)) for s in STAGES}
            sp = [1 / r["latency_ratio"] for r in recs if r.get("pruned") and r.get("latency_ratio")]
            med = statistics.median(sp) if sp else None
            lines.append(f"{fam:<12} {tool:<7} {int(sum(pruned)):>4}/{n:<4}  "
                         + "  ".join(f"{counts[s]:>4}/{n:<4}" for s in STAGES)
                         + f"  {fmt(med, '.2f')}x ({len(sp)} timed)")
            rows.append(row(tool, "pruned_models", pruned, units="fraction of models", family=fam,
                            pruned=int(sum(pruned)), total=n, stage_counts=counts,
                            note="prune ok AND |MACs fraction - 0.5| <= 0.02 (verdict counter) AND "
                                 "output shape kept AND forward ok AND save/load max abs diff <= 1e-5"))
            rows.append(row(tool, "eager_speedup_b8", sp, units="x (dense / pruned)", family=fam,
                            median=med, batch_size=8, threads=2,
                            note="pruned models only; median of per-round ratios, interleaved rounds"))
    return rows, lines


def short_error(rec: dict) -> str:
    return "" if rec.get("pruned") else (rec.get("error") or "")[:120]


def model_rows(records: list[dict]) -> list[dict]:
    """One compact row per model and tool (full records go to the .records.json file)."""
    rows = []
    by_key: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        by_key.setdefault((r["model"], r["tool"]), []).append(r)
    for (model, tool), recs in by_key.items():
        fr = [r["macs_fraction"] for r in recs if isinstance(r.get("macs_fraction"), float)]
        lat = [r["latency_ratio"] for r in recs if r.get("latency_ratio")]
        sl = [r["saveload_max_abs_diff"] for r in recs
              if isinstance(r.get("saveload_max_abs_diff"), float)]
        full = [r["macs_fraction_full"] for r in recs if isinstance(r.get("macs_fraction_full"), float)]
        rows.append(row(tool, "macs_fraction", fr, units="MACs after / before (batch 1)",
                        model=model, family=recs[0]["family"],
                        macs_fraction_full=statistics.fmean(full) if full else None,
                        pruned=all(r.get("pruned") for r in recs),
                        latency_ratio_b8=statistics.median(lat) if lat else None,
                        saveload_max_abs_diff=max(sl) if sl else None,
                        onnx_ok=all(r.get("onnx_ok") for r in recs),
                        seconds=round(sum(r.get("wall_s", 0.0) for r in recs), 1),
                        error=short_error(recs[0])))
    return rows


def records_path(out: Path) -> Path:
    return out.with_name(out.stem + ".records.json")


def print_models(records: list[dict]) -> None:
    print(f"\n{'model':<42} {'tool':<7} {'ok':>2} {'macs':>6} {'full':>6} {'shape':>5} {'fwd':>3} "
          f"{'s/l diff':>9} {'onnx':>4} {'lat':>6} {'secs':>6}  error")
    for r in records:
        print(f"{r['model']:<42} {r['tool']:<7} {fmt(r.get('prune_ok')):>2} "
              f"{fmt(r.get('macs_fraction')):>6} {fmt(r.get('macs_fraction_full')):>6} "
              f"{fmt(r.get('shape_kept')):>5} {fmt(r.get('forward_ok')):>3} "
              f"{fmt(r.get('saveload_max_abs_diff'), '.1e'):>9} {fmt(r.get('onnx_ok')):>4} "
              f"{fmt(r.get('latency_ratio'), '.2f'):>6} {fmt(r.get('wall_s'), '.0f'):>6}  "
              f"{'' if r.get('pruned') else (r.get('error') or '')[:90]}")


def dist_versions() -> dict[str, str]:
    """Installed distribution versions (torch_pruning.__version__ says 1.6.0 in 1.6.1)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for d in ("torch", "torch-pruning", "torchvision", "timm", "transformers", "onnxruntime"):
        try:
            out[d] = version(d)
        except PackageNotFoundError:
            continue
    return out


def write_all(records: list[dict], families: list[str], tools: list[str], args, extra_rows,
              quiet: bool = False) -> list[str]:
    rows, lines = summarise(records, families, tools)
    settings = {"goal_macs": GOAL, "tolerance": TOL, "round_to": 8, "criterion": "l1",
                "tp_scope": args.tp_scope, "tp_search_counter": args.tp_search_counter,
                "tp_max_pruning_ratio": 0.9, "timeout_s": args.timeout, "full_res": args.full_res,
                "verdict_counter": args.verdict_counter, "quick": args.quick,
                "latency_rounds": args.latency_rounds, "latency_budget_s": args.latency_budget,
                "timm_fused_attn": args.timm_fused_attn, "packages": dist_versions()}
    for rw in rows:
        rw["settings"] = settings
    all_rows = rows + model_rows(records) + extra_rows
    rp = records_path(args.out)
    rp.parent.mkdir(parents=True, exist_ok=True)
    tmp = rp.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=1, default=str) + "\n")
    os.replace(tmp, rp)
    if quiet:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(all_rows, indent=1, default=str) + "\n")
        os.replace(tmp, args.out)
    else:
        write_rows(all_rows, args.out, NAME)
    return lines


def main() -> None:
    p = base_parser(NAME, __doc__.splitlines()[0], seeds=1)
    p.add_argument("--family", action="append", choices=["torchvision", "timm", "hf"],
                   help="only these families (repeatable; default all three)")
    p.add_argument("--only", action="append", default=None, metavar="PATTERN",
                   help="only models whose FAMILY:NAME or NAME matches this fnmatch pattern "
                        "(repeatable, or comma-separated)")
    p.add_argument("--tools", default="leandl,tp", help="comma-separated: leandl,tp")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds per model and tool (x1..4 for heavy torchvision models)")
    p.add_argument("--resume", action="store_true",
                   help="keep the records already in OUT.records.json and run only the missing ones")
    p.add_argument("--list", action="store_true", help="print the selected models and exit")
    p.add_argument("--full-res", action="store_true", help="224x224 for every CNN too")
    p.add_argument("--latency-rounds", type=int, default=10)
    p.add_argument("--latency-budget", type=float, default=40.0,
                   help="seconds of latency timing a model may take before rounds are cut")
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--no-latency", action="store_true")
    p.add_argument("--tp-scope", choices=["global", "layerwise"], default="global")
    p.add_argument("--tp-search-counter", choices=["tp", "leandl", "full"], default="tp",
                   help="counter TP's ratio bisection aims with (default TP's own)")
    p.add_argument("--timm-fused-attn", action="store_true",
                   help="keep timm's fused attention (default: TIMM_FUSED_ATTN=0 for both tools, "
                        "as TP's timm example does)")
    p.add_argument("--verdict-counter", choices=["leandl", "full"], default="full",
                   help="MACs counter whose fraction decides 'landed' for the verdict: full "
                        "(default; FlopCounterMode that also sees fused MultiheadAttention and "
                        "CPU SDPA) or leandl (leandl.measure.count_macs); both are recorded")
    p.add_argument("--one", metavar="FAMILY:NAME", help="worker: run one model in this process")
    p.add_argument("--tool", choices=TOOLS, help="worker: which tool")
    p.add_argument("--seed", type=int, default=0, help="worker: seed")
    p.add_argument("--record", type=Path, help="worker: write the record here (else stdout)")
    args = p.parse_args()

    if args.one:
        rec = run_one(args.one, args.tool or "leandl", args.seed, args, args.record)
        if args.record is None:
            print(json.dumps(rec, default=str))
        return

    tools = [t for t in args.tools.split(",") if t]
    families = args.family or ["torchvision", "timm", "hf"]
    only = [q for item in (args.only or []) for q in item.split(",") if q]
    if args.quick and not only:
        only = list(zm.QUICK)
        args.latency_rounds = min(args.latency_rounds, 4)
    list_errors: dict[str, str] = {}
    entries = zm.select(zm.all_entries(families, args.full_res, list_errors), only)
    for fam, err in list_errors.items():
        print(f"cannot list family {fam}: {err}")
    if args.list:
        for e in entries:
            print(f"{e.key:<45} {e.image_size or '-':>4}  x{e.time_scale():.1f} time")
        print(f"{len(entries)} models")
        return
    records: list[dict] = []
    if args.resume and records_path(args.out).exists():
        records = json.loads(records_path(args.out).read_text())
        print(f"resuming: {len(records)} records from {records_path(args.out)}")
    done = {(r["model"], r["tool"], r["seed"]) for r in records}
    todo = [(e, t, s) for e in entries for t in tools for s in range(args.seeds)
            if (e.key, t, s) not in done]
    print(f"{len(entries)} models x {len(tools)} tools x {args.seeds} seed(s): {len(todo)} runs; "
          f"versions {json.dumps(versions())}")
    t_start = time.perf_counter()
    for i, (e, tool, seed) in enumerate(todo):
        rec = spawn(e, tool, seed, args)
        records.append(rec)
        print(f"[{i + 1}/{len(todo)}] {e.key:<42} {tool:<6} s{seed} {rec['wall_s']:6.1f} s  "
              f"load {os.getloadavg()[0]:4.1f}  {status_line(rec)}", flush=True)
        write_all(records, families, tools, args, [], quiet=True)
    print(f"total {time.perf_counter() - t_start:.0f} s")
    print_models(records)
    extra = [row("harness", "list_error", [], family=f, error=err) for f, err in list_errors.items()]
    lines = write_all(records, families, tools, args, extra)
    print(f"\n{NAME}: pruned / total per family and tool (target {GOAL} of MACs +- {TOL})")
    for ln in lines:
        print(ln)
    summary = [dict(rw, method=f"{rw['method']} [{rw['family']}]")
               for rw in json.loads(args.out.read_text())
               if rw.get("metric") in ("pruned_models", "eager_speedup_b8")]
    print_table(summary, f"{NAME} summary rows (quick={args.quick})")
    print("latency: per-round ratios are in each record; dense_round_spread (max/min of the dense "
          "model's round medians) and loadavg_1min tell how quiet the machine was")


if __name__ == "__main__":
    main()
