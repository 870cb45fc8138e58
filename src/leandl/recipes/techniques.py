"""Build techniques from recipe entries, checking names and keyword arguments first."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from leandl.errors import ConfigError, LeandlError, UsageError, closest
from leandl.recipes.schema import TechniqueEntry
from leandl.registry import TECHNIQUES

__all__ = ["check_technique", "build_techniques"]


def _signature_model(cls: type) -> Any:
    """A pydantic model of ``cls.__init__``'s keyword arguments (types from annotations)."""
    sig = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: accept any value
        hints = {}
    fields: dict[str, Any] = {}
    for name, p in list(sig.parameters.items())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = ... if p.default is p.empty else p.default
        fields[name] = (hints.get(name, Any), default)
    return create_model(f"{cls.__name__}Args", __config__=ConfigDict(extra="forbid",
                        arbitrary_types_allowed=True), **fields)


def check_technique(entry: TechniqueEntry | dict[str, Any], where: str) -> tuple[type, dict[str, Any]]:
    """Resolve the technique class and validate its kwargs; errors name ``where``."""
    if isinstance(entry, dict):
        entry = TechniqueEntry.model_validate(entry)
    try:
        cls = TECHNIQUES.get(entry.name)
    except UsageError as exc:
        raise ConfigError(exc.what, where=f"{where}.name", fix=exc.fix) from None
    kwargs = entry.kwargs()
    model = _signature_model(cls)
    try:
        model.model_validate(kwargs)
    except ValidationError as exc:
        problems = []
        valid = sorted(model.model_fields)
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                guess = closest(key, valid)
                hint = f"; did you mean '{guess}'?" if guess else ""
                problems.append(f"{where}.{key}: unknown argument of '{entry.name}'{hint} "
                                f"Valid: {', '.join(valid) or '(none)'}")
            else:
                problems.append(f"{where}.{key}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("; ".join(problems), fix="correct the technique's arguments") from None
    if not any(k.startswith("teacher") for k in kwargs):  # teachers load at stage time
        try:  # values the types allow but the technique refuses (smoothing 7, weight -1 ...)
            cls(**kwargs)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where} ({entry.name}): {exc}",
                              fix="correct the technique's arguments") from None
        except UsageError as exc:  # the technique's own argument check
            raise ConfigError(f"{where} ({entry.name}): {exc.what}", fix=exc.fix) from None
        except LeandlError:  # needs what only the stage has (a teacher, a model): checked there
            pass
    return cls, kwargs


def build_techniques(entries: list[TechniqueEntry], where: str) -> list[Any]:
    """Instantiate every technique entry (validated first)."""
    out = []
    for i, entry in enumerate(entries):
        cls, kwargs = check_technique(entry, f"{where}.techniques[{i}]")
        try:
            out.append(cls(**kwargs))
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc), where=f"{where}.techniques[{i}] ({entry.name})",
                              fix="correct the technique's arguments") from None
    return out
