"""Techniques that hook into training events: target revising, robust losses, regularizers,
efficient training, weight averaging. One file per technique; each registers itself in
:data:`leandl.registry.TECHNIQUES` and exposes a typed pure function usable in a plain loop.
"""

from __future__ import annotations
