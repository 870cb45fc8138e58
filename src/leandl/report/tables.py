"""The report's tables as plain data (headers, string cells) with Markdown and HTML renderers.

Every cost column states its unit in the header: params and MACs as counts with SI prefixes
(k = 10^3, M = 10^6), sizes in SI bytes (kB = 10^3 B, MB = 10^6 B, as the terminal prints them),
accuracy in %, latency in milliseconds per batch (median) with the thread count beside it and
``NOISY (p90 = R x median)`` where p90 exceeds 1.5 x the median, energy in joules per sample with
its source (``estimated`` from MACs and memory traffic, or ``rapl`` counters). An early-exit
stage's MACs and latency are those of its selected budget (expected MACs; the full network's
latency divided by the measured early-exit speed-up), not of every head run together.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leandl.report.load import StagePoint
from leandl.report.outline import effective_latency, effective_macs, noisy_latency

__all__ = ["Table", "stage_table", "bench_table", "exits_tables", "comparison_tables", "batch_sizes",
           "fmt_si", "fmt_bytes", "fmt_num", "to_markdown", "to_html"]


@dataclass
class Table:
    """A titled table: ``headers`` and rows of already formatted cells."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""


def fmt_si(value: float | None, unit: str = "") -> str:
    """``1234567 -> '1.23 M'``: three significant digits with k/M/G/T (or m/µ/n) prefixes."""
    if value is None:
        return "–"
    mag = abs(value)
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"),
                           (1e-6, "µ"), (1e-9, "n")):
        if mag >= factor or factor == 1e-9:
            text = f"{value / factor:.3g} {prefix}{unit}".strip()
            return text if value != 0 else f"0 {unit}".strip()
    return f"{value:.3g} {unit}".strip()


def fmt_bytes(value: float | None) -> str:
    """Bytes in SI units, B / kB / MB / GB (10^3 steps), with three significant digits."""
    if value is None:
        return "–"
    for factor, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {unit}"
    return f"{int(value)} B"


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, ints as they are, anything else as text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def batch_sizes(stages: Sequence[StagePoint]) -> list[str]:
    """Every batch size with a latency measurement, numerically sorted (string keys)."""
    keys = {k for s in stages for k in (s.metrics.get("latency_ms") or {})}
    return sorted(keys, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))


def _energy(stage: StagePoint) -> str:
    value = stage.number("energy_j")
    if value is None:
        return "–"
    return f"{fmt_si(value, 'J')} ({stage.metrics.get('energy_source') or 'unlabelled'})"


def stage_table(stages: Sequence[StagePoint]) -> Table:
    """Per stage: accuracy and every measured cost, units in the headers."""
    sizes = batch_sizes(stages)
    headers = ["stage", "kind", "test accuracy", "params", "MACs / sample", "weights size"]
    headers += [f"latency b={b} (ms / batch)" for b in sizes]
    headers += ["threads", "energy / sample (source)", "train time (s)", "peak memory"]
    table = Table("Stages: accuracy and measured costs", headers, note=(
        "MACs and energy per sample (forward pass, batch 1); latency is the median per batch at the "
        "given batch size on the stated torch threads, marked NOISY where p90 > 1.5 × median (the "
        "machine was busy: rerun it); size is the safetensors weights file (the int8 ONNX file for a "
        "quantize stage); peak memory at the largest measured batch size. Early-exit stages: expected "
        "MACs and latency at the selected budget."))
    for s in stages:
        macs = fmt_si(effective_macs(s.kind, s.metrics))
        row = [s.label, s.kind if s.name == s.kind else f"{s.kind} ({s.name})", _pct(s.number("accuracy")),
               fmt_si(s.number("params")), macs + (" expected" if s.kind == "exits" else ""),
               fmt_bytes(s.number("size_bytes"))]
        noisy = noisy_latency(s.metrics)
        row += [fmt_num(effective_latency(s.kind, s.metrics, b))
                + (f" NOISY (p90 = {noisy[b]:.1f}× median)" if b in noisy else "") for b in sizes]
        row += [fmt_num(s.metrics.get("threads")), _energy(s), fmt_num(s.number("train_seconds")),
                fmt_bytes(s.number("peak_memory_bytes"))]
        table.rows.append(row)
    return table


_BENCH_COLS = (("backend", "backend", str), ("batch_size", "batch", fmt_num), ("threads", "threads", fmt_num),
               ("status", "status", str), ("latency_ms", "latency (ms / batch, median)", fmt_num),
               ("p90_ms", "p90 (ms)", fmt_num), ("throughput", "throughput (samples/s)", fmt_num),
               ("size_bytes", "size", fmt_bytes), ("max_abs_diff", "max |Δ logits| vs eager", fmt_num),
               ("top1_agreement", "top-1 agreement", fmt_num))


def bench_table(stages: Sequence[StagePoint]) -> Table | None:
    """Rows of every bench stage (backend x batch size), or None when no stage benchmarked."""
    rows = [(s, r) for s in stages for r in (s.metrics.get("bench") or []) if isinstance(r, dict)]
    if not rows:
        return None
    table = Table("Deployment benchmark", ["stage"] + [h for _, h, _ in _BENCH_COLS],
                  note="Same inputs on every backend; agreement and Δ are measured against eager PyTorch. "
                       "NOISY: p90 > 1.5 × median, the machine was busy during that timing.")
    for s, r in rows:
        cells = [fmt(r.get(key)) if r.get(key) is not None else "–" for key, _, fmt in _BENCH_COLS]
        if r.get("noisy") and isinstance(r.get("p90_over_median"), (int, float)):
            cells[4] += f" NOISY (p90 = {r['p90_over_median']:.1f}× median)"
        table.rows.append([s.label] + cells)
    return table


def exits_tables(stages: Sequence[StagePoint]) -> list[Table]:
    """Per early-exit stage: each budget's test accuracy, expected MACs and wall-clock speed-up."""
    out = []
    for s in stages:
        budgets = s.metrics.get("budgets")
        if s.kind != "exits" or not isinstance(budgets, list):
            continue
        table = Table(f"Early exits, {s.label}: budgets", ["budget (× backbone MACs)", "test accuracy",
                                                           "expected MACs / sample", "wall-clock speed-up"],
                      note=f"Backbone: {fmt_si(s.number('backbone_macs'))} MACs, final-exit accuracy "
                           f"{_pct(s.number('full_accuracy'))}.")
        for b in budgets:
            wall = b.get("wall_clock") or {}
            speed = wall.get("speedup") if isinstance(wall, dict) else None
            table.rows.append([fmt_num(b.get("budget_fraction")), _pct(b.get("test_accuracy")),
                               fmt_si(b.get("test_expected_macs")),
                               "–" if speed is None else f"{speed:.2f}×"])
        out.append(table)
    return out


def comparison_tables(stages: Sequence[StagePoint]) -> list[Table]:
    """Per compare stage: one row per variant (accuracy, memorisation, time)."""
    out = []
    for s in stages:
        rows = s.metrics.get("comparison")
        if not isinstance(rows, list) or not rows:
            continue
        keys = [k for k in rows[0] if k != "variant"]
        table = Table(f"Variants compared in {s.label}", ["variant"] + keys,
                      note=f"Kept: {s.metrics.get('kept', '–')}.")
        for r in rows:
            cells = [", ".join(map(str, r[k])) if isinstance(r.get(k), list) else fmt_num(r.get(k)) for k in keys]
            table.rows.append([str(r.get("variant"))] + cells)
        out.append(table)
    return out


def to_markdown(table: Table) -> str:
    """GitHub-flavoured Markdown: ``### title``, the pipe table and the note."""
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = [f"### {table.title}", "", "| " + " | ".join(map(esc, table.headers)) + " |",
             "|" + "|".join(["---"] * len(table.headers)) + "|"]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in table.rows]
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines) + "\n"


def to_html(table: Table, css_class: str = "") -> str:
    """An HTML ``<table>`` with a caption; cells are escaped."""
    cls = f' class="{html.escape(css_class)}"' if css_class else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in table.rows)
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (f"<h3>{html.escape(table.title)}</h3><table{cls}><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{note}")
