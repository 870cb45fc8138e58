"""A model's build spec and its structural-edit log, carried on the module itself.

A checkpoint stores ``spec`` (how to build the model: a registry name, a library name such as
``"torchvision:resnet18"``, ``"timm:convnext_atto"`` or ``"hf:BertModel"``, or an import path,
plus kwargs) and ``edits`` (structural changes applied since, in order: pruned channels, swapped
fake-quant modules, attached exits ...). Loading rebuilds from the spec and replays each edit
through the ``EDITS`` registry, so no pickle is ever needed.

:func:`leandl.models.create_model` records the spec; for models built elsewhere
:func:`leandl.models.derive_spec` works one out (``leandl.save`` does so by itself) and
:func:`leandl.models.from_hf` records a transformers model's. An edit logged on a model that has
no spec yet is kept when a spec is recorded later: the spec describes the model *before* its
edits.

An edit is a JSON-serialisable dict with a ``"kind"`` key naming an ``EDITS`` entry; that entry
is a function ``apply(model, edit) -> nn.Module`` which performs the same change again.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

__all__ = ["set_spec", "get_spec", "add_edit", "get_edits", "replay_edits"]

_SPEC_ATTR = "_leandl_spec"
_EDITS_ATTR = "_leandl_edits"


def set_spec(model: nn.Module, name: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Record how ``model`` was built (``name`` as passed to ``create_model``); keeps its edit log."""
    object.__setattr__(model, _SPEC_ATTR, {"name": name, "kwargs": dict(kwargs or {})})
    if not hasattr(model, _EDITS_ATTR):
        object.__setattr__(model, _EDITS_ATTR, [])
    return model


def get_spec(model: nn.Module) -> dict[str, Any] | None:
    """The recorded build spec, or ``None`` for a model leandl did not build."""
    spec = getattr(model, _SPEC_ATTR, None)
    return copy.deepcopy(spec) if spec is not None else None


def add_edit(model: nn.Module, edit: dict[str, Any]) -> None:
    """Append a structural edit (a dict with a ``"kind"`` key) to the model's log."""
    if "kind" not in edit:
        raise ValueError("a structural edit needs a 'kind' key")
    edits = getattr(model, _EDITS_ATTR, None)
    if edits is None:
        edits = []
        object.__setattr__(model, _EDITS_ATTR, edits)
    edits.append(copy.deepcopy(edit))


def get_edits(model: nn.Module) -> list[dict[str, Any]]:
    """A copy of the model's edit log (empty when none)."""
    return copy.deepcopy(getattr(model, _EDITS_ATTR, []))


def replay_edits(model: nn.Module, edits: list[dict[str, Any]]) -> nn.Module:
    """Apply ``edits`` in order through the ``EDITS`` registry and return the edited model.

    The edit log of the result equals ``edits`` (each apply function records its own edit
    again, or this function records it when the apply function did not).
    """
    from leandl.registry import EDITS

    for edit in edits:
        before = len(getattr(model, _EDITS_ATTR, []))
        model = EDITS.get(edit["kind"])(model, copy.deepcopy(edit))
        if len(getattr(model, _EDITS_ATTR, [])) == before:
            add_edit(model, edit)
    return model
