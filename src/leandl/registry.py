"""One generic name -> object registry, used for models, datasets, techniques, criteria, stages...

Registries fill themselves lazily: each names the packages ("providers") whose modules register
entries, and the first lookup imports every module below them. Adding a technique, model,
dataset or stage kind is therefore a one-file change: write the file with
``@TECHNIQUES.register("name")`` in a provider package and it is found.

Example:
    >>> from leandl.registry import MODELS
    >>> "digits_cnn" in MODELS.names()
    True
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from leandl.errors import UsageError, unknown_name_message

__all__ = [
    "Registry",
    "MODELS",
    "DATASETS",
    "TECHNIQUES",
    "CRITERIA",
    "STAGES",
    "EDITS",
    "BACKENDS",
    "LOSSES",
]

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps snake_case names to objects (classes or factories).

    Args:
        kind: what the entries are, used in messages ("model", "technique").
        providers: dotted package names whose submodules register entries on first lookup.
    """

    def __init__(self, kind: str, providers: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.providers = providers
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _add(o: T) -> T:
            if name in self._entries and self._entries[name] is not o:
                prev = self._entries[name]
                same = getattr(prev, "__qualname__", None) == getattr(o, "__qualname__", 0) and (
                    getattr(prev, "__module__", None) == getattr(o, "__module__", 0)
                )
                if not same:
                    raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = o
            return o

        return _add(obj) if obj is not None else _add

    def _load(self) -> None:
        if self._loaded:
            return
        for pkg_name in self.providers:
            try:
                pkg = importlib.import_module(pkg_name)
            except ModuleNotFoundError as exc:
                if exc.name == pkg_name:  # an optional provider package that is not there
                    continue
                raise
            path = getattr(pkg, "__path__", None)
            if path is None:
                continue
            for info in pkgutil.walk_packages(path, prefix=pkg_name + "."):
                if info.name.rsplit(".", 1)[-1].startswith("_"):
                    continue
                importlib.import_module(info.name)
        self._loaded = True

    def get(self, name: str) -> T:
        """Return the entry for ``name``; an unknown name raises :class:`UsageError`."""
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(
                unknown_name_message(self.kind, name, self._entries),
                fix=f"run `leandl list {self.kind}s` to see every name",
            ) from None

    def names(self) -> list[str]:
        """Sorted registered names."""
        self._load()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """Sorted (name, entry) pairs."""
        self._load()
        return sorted(self._entries.items())

    def describe(self, name: str) -> str:
        """First line of the entry's docstring (empty when it has none)."""
        doc = getattr(self.get(name), "__doc__", None) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries


_TECH_PROVIDERS = (
    "leandl.techniques",
    "leandl.prune",
    "leandl.distill",
    "leandl.quantize",
    "leandl.dynamic",
    "leandl.models.blocks",
)

MODELS: Registry[Callable[..., Any]] = Registry("model", ("leandl.models", "leandl.nas"))
DATASETS: Registry[Callable[..., Any]] = Registry("dataset", ("leandl.data",))
TECHNIQUES: Registry[Any] = Registry("technique", _TECH_PROVIDERS)
CRITERIA: Registry[Any] = Registry("criterion", ("leandl.prune",))
STAGES: Registry[Any] = Registry("stage", ("leandl.recipes.stages",))
EDITS: Registry[Callable[..., Any]] = Registry(
    "structural edit", ("leandl.prune", "leandl.quantize", "leandl.dynamic", "leandl.models.blocks")
)
BACKENDS: Registry[Any] = Registry("backend", ("leandl.deploy",))
LOSSES: Registry[Callable[..., Any]] = Registry("loss", _TECH_PROVIDERS)
