"""Pruning schedules: techniques that prune while training (one file per technique).

* ``gradual_pruning`` (AGP cubic schedule, structured or unstructured) — :mod:`.agp`
* ``soft_pruning`` (SFP / ASFP: zeroed filters may recover) — :mod:`.soft`
* ``prune_regrow`` (CHEX-style periodic prune and regrow) — :mod:`.regrow`
* ``early_bird`` (early-bird tickets: stop dense training when the mask settles) — :mod:`.early_bird`
* ``rewind_point`` and Scratch-E/B helpers (lottery-ticket and from-scratch baselines) — :mod:`.lottery`
"""

from __future__ import annotations

__all__: list[str] = []
