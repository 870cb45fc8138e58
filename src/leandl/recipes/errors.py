"""Turn pydantic validation errors into one clear :class:`ConfigError` paragraph."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from leandl.errors import ConfigError, closest

__all__ = ["config_error", "format_loc"]


def format_loc(loc: tuple[Any, ...], prefix: str = "") -> str:
    """``('stages', 0, 'epochs')`` -> ``stages[0].epochs``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class reached by following ``loc`` through field annotations."""
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _first_model(field.annotation)
    return model


def _first_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        found = _first_model(arg)
        if found is not None:
            return found
    if isinstance(ann, types.UnionType):
        return None
    return None


def config_error(exc: ValidationError, model: type[BaseModel] | None, prefix: str = "",
                 source: str | None = None) -> ConfigError:
    """A ConfigError listing every problem with its field path and, for an unknown key, the
    closest valid key."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = format_loc(loc, prefix)
        if err["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            valid = sorted(owner.model_fields) if owner is not None else []
            guess = closest(str(loc[-1]), valid)
            hint = f"; did you mean '{guess}'?" if guess else ""
            lines.append(f"{path}: unknown key '{loc[-1]}'{hint} Valid keys here: {', '.join(valid)}")
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
            lines.append(f"{path}: {err['msg']} (got {shown})")
    where = source or "recipe"
    return ConfigError("invalid recipe: " + "; ".join(lines), where=where,
                       fix="correct the field(s) named above")
