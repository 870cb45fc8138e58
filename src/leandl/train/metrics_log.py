"""``metrics.jsonl``: one JSON object per logged step, epoch or stage event."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

__all__ = ["MetricsLogger", "json_safe"]


def json_safe(value: Any) -> Any:
    """Convert tensors/numpy values to plain JSON values (NaN/inf become None)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class MetricsLogger:
    """Appends JSON lines to a file (no file: keeps records in memory only).

    Args:
        path: the ``metrics.jsonl`` file, or None.
        enabled: False on non-zero ranks of a distributed run.
        context: keys added to every record (e.g. ``{"stage": "01-train"}``).
    """

    def __init__(self, path: str | Path | None, enabled: bool = True, context: dict[str, Any] | None = None):
        self.path = Path(path) if path is not None else None
        self.enabled = enabled
        self.context = dict(context or {})
        self.records: list[dict[str, Any]] = []

    def child(self, **context: Any) -> MetricsLogger:
        """A logger writing to the same file with extra context keys."""
        out = MetricsLogger(self.path, self.enabled, {**self.context, **context})
        out.records = self.records
        return out

    def log(self, record: dict[str, Any]) -> None:
        """Append one record with a wall-clock timestamp."""
        if not self.enabled:
            return
        rec = json_safe({"time": round(time.time(), 3), **self.context, **record})
        self.records.append(rec)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
