"""The row groups of ``issue20_existing.py`` and the findings written after reading their numbers."""

from __future__ import annotations

from _issue20_distill import GROUPS as _DISTILL
from _issue20_prune import GROUPS as _PRUNE
from _issue20_train import GROUPS as _TRAIN

GROUPS = {**_PRUNE, **_DISTILL, **_TRAIN}

FINDINGS: dict[str, str] = {}
