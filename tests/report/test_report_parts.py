"""Pure parts of the report: Pareto front, unit formatting, metrics.jsonl parsing."""

from __future__ import annotations

import json
from pathlib import Path

from leandl.report.load import StagePoint, read_epochs
from leandl.report.pareto import pareto_front
from leandl.report.tables import fmt_bytes, fmt_si, stage_table


def test_pareto_front_hand_computed() -> None:
    # (cost, acc): A(1,.5) B(2,.7) C(3,.6) dominated by B, D(2,.4) dominated by B, E(4,.9)
    assert pareto_front([1, 2, 3, 2, 4], [0.5, 0.7, 0.6, 0.4, 0.9]) == [0, 1, 4]
    # equal cost: only the more accurate one; equal accuracy: only the cheaper one
    assert pareto_front([1, 1, 2], [0.3, 0.8, 0.8]) == [1]
    assert pareto_front([], []) == []


def test_unit_formatting() -> None:
    assert fmt_si(1_234_567) == "1.23 M"
    assert fmt_si(2.0e-6, "J") == "2 µJ"
    assert fmt_si(0.0, "J") == "0 J"
    assert fmt_si(None) == "–"
    assert fmt_bytes(1536) == "1.54 kB" and fmt_bytes(3 * 10**6) == "3 MB" and fmt_bytes(12) == "12 B"


def test_read_epochs_groups_by_stage_later_record_wins(tmp_path: Path) -> None:
    recs = [{"event": "epoch", "stage": "00-train", "epoch": 0, "train_accuracy": 0.5},
            {"event": "step", "stage": "00-train", "loss": 1.0},
            {"event": "epoch", "stage": "00-train", "epoch": 0, "train_accuracy": 0.6},
            {"event": "epoch", "stage": "01-compare/ce", "epoch": 0, "val_accuracy": 0.4}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n{broken")
    got = read_epochs(path)
    assert list(got) == ["00-train", "01-compare/ce"]
    assert got["00-train"][0]["train_accuracy"] == 0.6 and got["01-compare/ce"][0]["val_accuracy"] == 0.4


def test_stage_table_columns_follow_measured_batch_sizes() -> None:
    s = StagePoint("00-train", "r", "train", "train", {"accuracy": 0.5, "latency_ms": {"8": 2.0, "1": 1.0},
                                                        "threads": 4, "energy_j": 3e-3, "energy_source": "rapl"})
    t = stage_table([s])
    assert t.headers[6:8] == ["latency b=1 (ms / batch)", "latency b=8 (ms / batch)"]
    row = dict(zip(t.headers, t.rows[0], strict=True))
    assert row["test accuracy"] == "50.00 %" and row["threads"] == "4"
    assert row["energy / sample (source)"] == "3 mJ (rapl)" and row["params"] == "–"
