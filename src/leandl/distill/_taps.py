"""Feature taps: read intermediate outputs of named modules through forward hooks.

``FeatureTap(model, ["layer1", "head.flatten"])`` registers a forward hook on each named module
(``model.named_modules()`` names); after a forward pass ``tap.features`` maps each name to the
module's output of that pass. An unknown name raises :class:`~leandl.errors.ModelError` that
lists the valid names, so a recipe typo is fixed in one go.
"""

from __future__ import annotations

from collections.abc import Sequence


import torch.nn.functional as F
from torch import Tensor, nn

from leandl.errors import ModelError

__all__ = ["FeatureTap", "module_names", "default_layers", "match_spatial", "resolve_module"]


def module_names(model: nn.Module) -> list[str]:
    """Every non-root module name of ``model`` in registration order."""
    return [n for n, _ in model.named_modules() if n]


def resolve_module(model: nn.Module, name: str, role: str) -> nn.Module:
    """The submodule called ``name``; a :class:`ModelError` listing valid names otherwise."""
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    names = module_names(model)
    shown = ", ".join(names[:60]) + (" ..." if len(names) > 60 else "")
    raise ModelError(
        f"the {role} ({type(model).__name__}) has no module named '{name}'. Valid module names: {shown}",
        where=f"{role} layer",
        fix="pick a name from the list (dotted, as in model.named_modules())",
    )


def default_layers(model: nn.Module, role: str, which: str) -> list[str]:
    """Default tap points from a leandl model's ``exit_points``.

    Args:
        model: the model.
        role: ``student`` / ``teacher`` (for messages).
        which: ``middle`` (one hint layer, FitNets), ``all`` (every exit point, attention
            transfer) or ``embedding`` (``head.flatten``: the penultimate vector, RKD).
    """
    if which == "embedding":
        return ["head.flatten"]
    points = list(getattr(model, "exit_points", ()) or ())
    if not points:
        raise ModelError(
            f"the {role} ({type(model).__name__}) declares no exit_points, so no default feature layer exists",
            where=f"{role} layer", fix=f"name the {role}'s layer(s) explicitly, e.g. {module_names(model)[:4]}",
        )
    return [points[len(points) // 2]] if which == "middle" else points


class FeatureTap:
    """Forward hooks that keep the latest output of named modules.

    Args:
        model: the model to tap.
        names: dotted module names.
        role: ``student`` or ``teacher`` (for error messages).
    """

    def __init__(self, model: nn.Module, names: Sequence[str], role: str) -> None:
        self.names = list(names)
        self.role = role
        self.features: dict[str, Tensor] = {}
        self._handles = []
        for name in self.names:
            module = resolve_module(model, name, role)
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):  # noqa: ANN202 - a hook closure
        def keep(_module: nn.Module, _inputs: object, output: object) -> None:
            out = output[0] if isinstance(output, tuple | list) else output
            self.features[name] = out
        return keep

    def get(self, name: str) -> Tensor:
        """The output of ``name`` in the latest forward pass."""
        if name not in self.features:
            raise ModelError(f"the {self.role}'s module '{name}' did not run in the last forward pass",
                             where=f"{self.role} layer", fix="tap a module on the forward path")
        return self.features[name]

    def clear(self) -> None:
        """Forget the stored features (frees their autograd graphs)."""
        self.features.clear()

    def remove(self) -> None:
        """Remove every hook."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.features.clear()


def match_spatial(student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool the larger of two ``(B, C, *spatial)`` maps to the other's spatial size."""
    if student.shape[2:] == teacher.shape[2:]:
        return student, teacher
    pool = {3: F.adaptive_avg_pool1d, 4: F.adaptive_avg_pool2d}.get(student.dim())
    if pool is None or student.dim() != teacher.dim():
        raise ModelError(f"cannot match feature shapes {tuple(student.shape)} (student) and "
                         f"{tuple(teacher.shape)} (teacher)", where="feature layers",
                         fix="tap layers whose outputs have the same rank (both 1-D or both 2-D maps)")
    small = [min(a, b) for a, b in zip(student.shape[2:], teacher.shape[2:], strict=True)]
    s = student if list(student.shape[2:]) == small else pool(student, small)
    t = teacher if list(teacher.shape[2:]) == small else pool(teacher, small)
    return s, t


def check_batch(student: Tensor, teacher: Tensor, where: str) -> None:
    """Both features must carry the same batch size."""
    if student.shape[0] != teacher.shape[0]:
        raise ModelError(f"batch sizes differ: student {tuple(student.shape)}, teacher {tuple(teacher.shape)}",
                         where=where, fix="tap modules that keep the batch dimension first")


