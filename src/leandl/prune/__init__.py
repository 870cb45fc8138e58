"""Structured and unstructured pruning: dependency groups, criteria, surgery, schedules.

- :mod:`leandl.prune.groups`: coupled channel/head/MLP-unit groups of any fx-traceable model,
  soft masking and physical removal (recorded as a replayable ``prune_units`` edit).
- :mod:`leandl.prune.criteria`: importance criteria registered in ``CRITERIA``.
- :mod:`leandl.prune.api`: :func:`prune_`, one-shot / iterative pruning to a ratio, MACs,
  params or latency target.
"""

from __future__ import annotations

from leandl.prune.groups import ChannelGroup, channel_groups, remove_units_, unit_weights, zero_units_

__all__ = ["ChannelGroup", "channel_groups", "unit_weights", "zero_units_", "remove_units_"]
