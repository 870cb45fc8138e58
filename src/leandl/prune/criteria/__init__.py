"""Importance criteria for structured pruning, one file each, registered in ``CRITERIA``.

Interface: ``criterion(model, group, batches=None) -> Tensor (group.size,)``, higher = more
important. ``needs_data`` says whether ``batches`` (an iterable of ``(inputs, targets)``) is
required. Get one by name with :func:`get_criterion`.
"""

from __future__ import annotations

from leandl.prune.criteria._base import Criterion, get_criterion

__all__ = ["Criterion", "get_criterion"]
