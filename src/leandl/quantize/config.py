"""Quantiser settings as frozen, validated dataclasses (JSON round-trip for checkpoint edits).

``QuantConfig(bits, symmetric, granularity, observer, method, signed)`` describes one quantiser:

* ``granularity``: :class:`PerTensor` (one scale) or :class:`PerChannel` ``(axis)`` (one scale per
  slice along ``axis``; axis 0 of a weight = output channels).
* ``method``: ``observer`` (scale from an observer of the data: ``minmax``, ``moving_average``,
  ``percentile`` or ``mse``), ``lsq`` (learned step size, arXiv 1902.08153) or ``pact`` (learned
  clipping level for non-negative activations, arXiv 1805.06085).
* ``signed``: code range, see :func:`leandl.quantize.primitives.qrange` (None: signed when symmetric).
  ``bits=1`` is only valid for signed LSQ weights (binary ``s * sign(w)``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PerTensor", "PerChannel", "QuantConfig", "OBSERVERS", "METHODS"]

OBSERVERS = ("minmax", "moving_average", "percentile", "mse")
METHODS = ("observer", "lsq", "pact")


@dataclass(frozen=True)
class PerTensor:
    """One scale and zero point for the whole tensor."""


@dataclass(frozen=True)
class PerChannel:
    """One scale and zero point per slice along ``axis``."""

    axis: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.axis, int) or self.axis < 0:
            raise ValueError(f"PerChannel axis must be an int >= 0, got {self.axis!r}")


@dataclass(frozen=True)
class QuantConfig:
    """One quantiser's settings.

    Args:
        bits: code width, 1..8 (1 only for signed LSQ weights).
        symmetric: zero point 0 (True) or affine with a zero point (False).
        granularity: :class:`PerTensor` or :class:`PerChannel`.
        observer: with ``method="observer"``: ``minmax``, ``moving_average``, ``percentile``, ``mse``.
        method: ``observer``, ``lsq`` or ``pact``.
        signed: signed codes (None: same as ``symmetric``).
    """

    bits: int = 8
    symmetric: bool = True
    granularity: PerTensor | PerChannel = field(default_factory=PerTensor)
    observer: str = "minmax"
    method: str = "observer"
    signed: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 8:
            raise ValueError(f"QuantConfig.bits must be an int in 1..8, got {self.bits!r}")
        if not isinstance(self.granularity, PerTensor | PerChannel):
            raise ValueError("QuantConfig.granularity must be PerTensor() or PerChannel(axis)")
        if self.observer not in OBSERVERS:
            raise ValueError(f"QuantConfig.observer must be one of {OBSERVERS}, got {self.observer!r}")
        if self.method not in METHODS:
            raise ValueError(f"QuantConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.method == "pact" and (self.is_signed or isinstance(self.granularity, PerChannel)):
            raise ValueError("QuantConfig: method 'pact' quantises non-negative activations per tensor; "
                             "use signed=False, symmetric=True, PerTensor()")
        if self.method in ("lsq", "pact") and not self.symmetric:
            raise ValueError(f"QuantConfig: method '{self.method}' has no zero point; use symmetric=True")
        if self.bits == 1 and not (self.method == "lsq" and self.is_signed):
            raise ValueError("QuantConfig: bits=1 is only valid for signed LSQ quantisers (binary weights)")

    @property
    def is_signed(self) -> bool:
        """Whether codes are signed."""
        return self.symmetric if self.signed is None else self.signed

    @property
    def axis(self) -> int | None:
        """Channel axis, or None for per-tensor."""
        return self.granularity.axis if isinstance(self.granularity, PerChannel) else None

    def replace(self, **changes: Any) -> QuantConfig:
        """A copy with some fields changed (validated again)."""
        data = {**self.__dict__, **changes}
        return QuantConfig(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``granularity`` as ``{"axis": k}`` or ``"per_tensor"``)."""
        d = asdict(self)
        d["granularity"] = "per_tensor" if self.axis is None else {"axis": self.axis}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        g = d.pop("granularity", "per_tensor")
        gran: PerTensor | PerChannel = PerTensor() if g == "per_tensor" else PerChannel(int(g["axis"]))
        return cls(granularity=gran, **d)
