"""The technique base class and the engine that dispatches events to techniques.

A technique is an object with methods named after the events it handles
(``def before_loss(self, state)``). The engine looks each method up once, so an event that no
technique handles costs nothing per step. ``order`` (fastai style, default 0) sorts
techniques; equal orders keep recipe order. ``state_dict``/``load_state_dict`` make a
technique resumable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from leandl.train.events import EVENTS, Event
from leandl.train.state import State

__all__ = ["Technique", "Engine"]


class Technique:
    """Base class of every technique; subclasses define methods named after events.

    Class attributes:
        name: registry name (set by ``@TECHNIQUES.register``-decorated subclasses).
        order: integer sort key; lower runs first at each event.
        changes_model: True when the technique edits the model structure at ``fit_end``.
    """

    name: ClassVar[str] = "technique"
    order: ClassVar[int] = 0

    def handles(self) -> list[Event]:
        """Events for which this technique defines a method."""
        return [e for e in EVENTS if callable(getattr(self, e.value, None))]

    def state_dict(self) -> dict[str, Any]:
        """Resumable state (tensors, numbers, strings, nested lists/dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def summary(self) -> dict[str, Any]:
        """Numbers to add to the stage summary's metrics at the end of the fit."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Engine:
    """Runs techniques at events in ``(order, position)`` order.

    Args:
        techniques: the techniques, in recipe order.
        trace: when True, record ``(step, event, technique name)`` for every call.
    """

    def __init__(self, techniques: Iterable[Technique], trace: bool = False) -> None:
        self.techniques = sorted(
            enumerate(techniques), key=lambda it: (getattr(it[1], "order", 0), it[0])
        )
        self.techniques = [t for _, t in self.techniques]
        self.trace: list[tuple[int, str, str]] | None = [] if trace else None
        self._table: dict[Event, list[tuple[str, Callable[[State], Any]]]] = {e: [] for e in EVENTS}
        for tech in self.techniques:
            for event in tech.handles():
                label = getattr(tech, "name", type(tech).__name__)
                self._table[event].append((label, getattr(tech, event.value)))

    def run(self, event: Event, state: State) -> None:
        """Call every technique's handler for ``event``."""
        handlers = self._table[event]
        if not handlers:
            return
        for label, fn in handlers:
            if self.trace is not None:
                self.trace.append((state.step, event.value, label))
            fn(state)

    def has(self, event: Event) -> bool:
        """Whether any technique handles ``event``."""
        return bool(self._table[event])
