"""Multi-exit networks: attach early-exit heads to a backbone made of a chain of stages.

``attach_exits(backbone, after=["layer1", "layer2"])`` splits the backbone's forward into
segments ending at the named modules and returns a :class:`MultiExit` whose forward gives the
list of exit logits ``[z_1, ..., z_K]`` (``z_K`` is the backbone's own classifier), so the
trainer sums ``sum_k w_k CE(z_k, y)`` (BranchyNet / MSDNet, arXiv 1709.01686, 1703.09844).

The split works on:

- leandl models (``_chain`` of named stages, then ``forward_head``); an exit inside an
  ``nn.Sequential`` stage (``"blocks.3"`` of ``vit_tiny``) expands that stage into its children;
- an ``nn.Sequential`` user model (children in order, no separate head);
- any other model when ``chain`` names its top-level modules in forward order and ``final``
  the module (or ``"forward_head"`` method) that turns the last features into logits.

Because the model is an explicit chain, inference can run it segment by segment and stop
computing for samples that have exited (:mod:`leandl.dynamic.infer`). The change is recorded as
an ``attach_exits`` structural edit, so ``leandl.checkpoint.load`` rebuilds an exit model
without pickle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from leandl.dynamic.gradient_equilibrium import gradient_rescale
from leandl.dynamic.heads import InlineLink, build_exit_head
from leandl.errors import ModelError
from leandl.registry import EDITS
from leandl.spec import add_edit, get_edits, get_spec, set_spec

__all__ = ["MultiExit", "attach_exits", "freeze_backbone_", "add_inline_links_"]

_HEAD_METHOD = "forward_head"


class MultiExit(nn.Module):
    """A backbone split into K segments, with an exit head after each.

    Args:
        backbone: the wrapped network (its parameters keep their names under ``backbone.``).
        segments: K lists of dotted module names of ``backbone``, run in order.
        final: how the last segment's output becomes logits: ``"forward_head"`` (a backbone
            method), a module name, or ``None`` (the last segment already yields logits).
        heads: K - 1 exit heads, one after each of the first K - 1 segments.
        exit_names: the K - 1 module names the exits follow.

    Attributes:
        gradient_equilibrium: rescale gradients as in IMTA (set by the technique).
        backbone_frozen: keep the backbone in eval mode when ``train()`` is called.
    """

    def __init__(self, backbone: nn.Module, segments: list[list[str]], final: str | None,
                 heads: list[nn.Module], exit_names: Sequence[str]) -> None:
        super().__init__()
        if len(heads) != len(segments) - 1:
            raise ModelError(f"{len(segments)} segments need {len(segments) - 1} heads, got {len(heads)}")
        self.backbone = backbone
        self.exits = nn.ModuleList(heads)
        self.links = nn.ModuleList()
        self.segments = [list(s) for s in segments]
        self.final = final
        self.exit_names = tuple(exit_names)
        self.gradient_equilibrium = False
        self.backbone_frozen = False

    @property
    def num_exits(self) -> int:
        """K, the number of exits including the final classifier."""
        return len(self.segments)

    def run_segment(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Run segment ``k`` (0-indexed) on the previous segment's output."""
        for name in self.segments[k]:
            x = self.backbone.get_submodule(name)(x)
        return x

    def exit_logits(self, k: int, h: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of exit ``k`` from segment ``k``'s output ``h`` (and exit k-1's logits)."""
        if k < self.num_exits - 1:
            z = self.exits[k](h)
        elif self.final == _HEAD_METHOD:
            z = self.backbone.forward_head(h)
        elif self.final is not None:
            z = self.backbone.get_submodule(self.final)(h)
        else:
            z = h
        if len(self.links) and k > 0 and prev is not None:
            z = z + self.links[k - 1](prev)
        return z

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every exit, ``[z_1, ..., z_K]``, each ``(B, num_classes)``.

        With ``gradient_equilibrium`` on, segment k's output (0-indexed) goes through
        ``GR(., 1/(K-k))`` before its exit and ``GR(., K-k-1)`` before the next segment,
        as in IMTA's code, so a block receives the mean of its exits' gradients.
        """
        k_total, outs = self.num_exits, []
        ge = self.gradient_equilibrium and torch.is_grad_enabled()
        prev: torch.Tensor | None = None
        for k in range(k_total):
            x = self.run_segment(k, x)
            if ge:
                x = gradient_rescale(x, 1.0 / (k_total - k))
            prev = self.exit_logits(k, x, prev)
            outs.append(prev)
            if ge and k < k_total - 1:
                x = gradient_rescale(x, float(k_total - k - 1))
        return outs

    def forward_prefix(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Everything a sample exiting at exit ``k`` pays for: segments and exits 0..k."""
        prev = None
        for j in range(k + 1):
            x = self.run_segment(j, x)
            prev = self.exit_logits(j, x, prev)
        return prev

    def get_classifier(self) -> nn.Module:
        """The backbone's final classifier."""
        return self.backbone.get_classifier()

    def train(self, mode: bool = True) -> MultiExit:
        """Set training mode; a frozen backbone stays in eval mode (BN statistics fixed)."""
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self


# ------------------------------------------------------------------ planning the split
def _chain_of(backbone: nn.Module, chain: Sequence[str] | None,
              final: str | None) -> tuple[list[str], str | None]:
    if chain is not None:
        return list(chain), final
    if getattr(backbone, "_chain", None):
        return list(backbone._chain), final or _HEAD_METHOD
    if isinstance(backbone, nn.Sequential):
        return [n for n, _ in backbone.named_children()], final
    raise ModelError(
        f"cannot split a {type(backbone).__name__} into stages: its forward is not a known chain",
        where="attach_exits", fix="pass chain=[top-level module names in forward order] and "
        "final='<classifier module>' (or make the model an nn.Sequential)")


def _valid_names(backbone: nn.Module, atoms: list[str]) -> list[str]:
    points = list(getattr(backbone, "exit_points", ()) or ())
    return points or atoms


def _expand(backbone: nn.Module, atoms: list[str], name: str) -> list[str]:
    """Expand Sequential atoms until ``name`` is one of them."""
    while name not in atoms:
        parent = next((a for a in atoms if name.startswith(a + ".")), None)
        mod = backbone.get_submodule(parent) if parent is not None else None
        if not isinstance(mod, nn.Sequential):
            return atoms
        i = atoms.index(parent)
        atoms = atoms[:i] + [f"{parent}.{c}" for c, _ in mod.named_children()] + atoms[i + 1:]
    return atoms


def _plan(backbone: nn.Module, after: Sequence[str], chain: Sequence[str] | None,
          final: str | None) -> tuple[list[list[str]], str | None]:
    atoms, final = _chain_of(backbone, chain, final)
    for a in atoms:
        _check_module(backbone, a, atoms)
    for name in after:
        atoms = _expand(backbone, atoms, name)
        if name not in atoms:
            valid = _valid_names(backbone, atoms)
            raise ModelError(f"'{name}' is not a stage boundary of {type(backbone).__name__}",
                             where="attach_exits(after=...)",
                             fix=f"name modules from: {', '.join(valid)}")
    pos = [atoms.index(n) for n in after]
    if pos != sorted(pos) or len(set(pos)) != len(pos) or (pos and pos[-1] == len(atoms) - 1
                                                          and final is None):
        raise ModelError(f"exits must follow distinct modules in forward order, before the "
                         f"last one; got {list(after)}", where="attach_exits(after=...)",
                         fix=f"order them as in: {', '.join(atoms)}")
    cuts = [0] + [p + 1 for p in pos] + [len(atoms)]
    return [atoms[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)], final


def _check_module(backbone: nn.Module, name: str, atoms: list[str]) -> None:
    try:
        backbone.get_submodule(name)
    except AttributeError:
        raise ModelError(f"no module '{name}' in {type(backbone).__name__}", where="attach_exits(chain=...)",
                         fix=f"name modules from: {', '.join(n for n, _ in backbone.named_children())}") from None


def _feature_shapes(wrapper: MultiExit, input_shape: Sequence[int]) -> tuple[list[torch.Size], int]:
    p = next(wrapper.backbone.parameters(), None)
    x = torch.zeros(2, *input_shape, device=p.device if p is not None else "cpu")
    shapes = []
    was = wrapper.backbone.training
    wrapper.backbone.eval()
    try:
        with torch.no_grad():
            for k in range(wrapper.num_exits - 1):
                x = wrapper.run_segment(k, x)
                shapes.append(x.shape)
            z = wrapper.exit_logits(wrapper.num_exits - 1, wrapper.run_segment(wrapper.num_exits - 1, x))
    finally:
        wrapper.backbone.train(was)
    return shapes, int(z.shape[-1])


def _layout(backbone: nn.Module, layout: str | None, shape: torch.Size) -> str:
    if layout is not None:
        return layout
    default = getattr(backbone, "feature_layout", None)
    if default is not None:
        return default
    return {4: "nchw", 3: "ncl"}.get(len(shape), "nc")


def _channels(layout: str, shape: torch.Size) -> int:
    if layout in ("nchw", "ncl"):
        return int(shape[1])
    if layout == "nld":
        return int(shape[-1])
    return int(math.prod(shape[1:]))


# ------------------------------------------------------------------ public API
def attach_exits(backbone: nn.Module, after: Sequence[str], head: str = "linear", *,
                 input_shape: Sequence[int] | None = None, pool: int = 1, hidden: int = 128,
                 layout: str | None = None, chain: Sequence[str] | None = None,
                 final: str | None = None) -> MultiExit:
    """Attach an exit head after each module named in ``after``; return a :class:`MultiExit`.

    Args:
        backbone: a leandl model, an ``nn.Sequential``, or any model with ``chain``/``final``.
        after: dotted module names, in forward order (leandl models list the natural ones in
            ``backbone.exit_points``).
        head: exit head kind, ``"linear"`` or ``"mlp"`` (see :func:`build_exit_head`).
        input_shape: one sample's shape (default: the model spec's ``input_shape``).
        pool: adaptive pooling cells per spatial dimension in each exit head.
        hidden: hidden units of ``"mlp"`` heads.
        layout: feature layout (default: ``backbone.feature_layout``, else from the rank).
        chain: top-level module names run in order, for models that are not leandl chains.
        final: module name (or ``"forward_head"``) mapping the last features to logits.

    Returns:
        The multi-exit model; its forward gives K = len(after) + 1 logit tensors. It carries
        the backbone's build spec and edit log plus an ``attach_exits`` edit.

    Raises:
        ModelError: a name that is not a stage boundary (the message lists valid names), an
            unsplittable model, or no known input shape.

    Example:
        >>> net = create_model("mnist1d_cnn", input_shape=(1, 40))
        >>> me = attach_exits(net, after=["stem", "layer1", "layer2"], pool=4)
        >>> [z.shape for z in me(torch.zeros(2, 1, 40))]  # 4 x (2, 10)
    """
    if isinstance(backbone, MultiExit):
        raise ModelError("the model already has exits", where="attach_exits",
                         fix="attach all exits in one call on the plain backbone")
    spec = get_spec(backbone)
    if input_shape is None:
        input_shape = (spec or {}).get("kwargs", {}).get("input_shape")
    if input_shape is None:
        raise ModelError("the input shape is unknown", where="attach_exits",
                         fix="pass input_shape=(C, H, W) or (C, L) of one sample")
    after = list(after)
    segments, final = _plan(backbone, after, chain, final)
    model = MultiExit(backbone, segments, final, [nn.Identity() for _ in after], after)
    shapes, num_classes = _feature_shapes(model, input_shape)
    lay = [_layout(backbone, layout, s) for s in shapes]
    heads = [build_exit_head(head, lo, _channels(lo, s), num_classes, pool=pool, hidden=hidden)
             for lo, s in zip(lay, shapes, strict=True)]
    p = next(backbone.parameters(), None)
    model.exits = nn.ModuleList(heads).to(p.device if p is not None else "cpu")
    if spec is not None:
        set_spec(model, spec["name"], spec["kwargs"])
    for edit in get_edits(backbone):
        add_edit(model, edit)
    add_edit(model, {"kind": "attach_exits", "after": after, "head": head,
                     "input_shape": [int(s) for s in input_shape], "pool": int(pool),
                     "hidden": int(hidden), "layout": layout,
                     "chain": list(chain) if chain is not None else None, "final": final})
    return model


def freeze_backbone_(model: MultiExit) -> MultiExit:
    """Freeze the backbone (no gradients, BN statistics fixed); exits and links stay trainable."""
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    model.backbone_frozen = True
    model.train(model.training)
    return model


def add_inline_links_(model: MultiExit, width: int = 128, detach: bool = False) -> MultiExit:
    """Add IMTA inline-collaboration links (exit k-1 logits -> exit k) in place and record it.

    Raises:
        ModelError: the model is not a :class:`MultiExit` or already has links.
    """
    if not isinstance(model, MultiExit):
        raise ModelError("inline collaboration needs a multi-exit model", where=type(model).__name__,
                         fix="attach exits first (leandl.dynamic.attach_exits or the 'exits' stage)")
    if len(model.links):
        raise ModelError("the model already has inline-collaboration links", where="add_inline_links_")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    p = next(model.parameters())
    c = _num_classes(model)
    model.links = nn.ModuleList(InlineLink(c, width, detach) for _ in range(model.num_exits - 1)).to(p.device)
    add_edit(model, {"kind": "inline_collaboration", "width": int(width), "detach": bool(detach)})
    return model


def _num_classes(model: MultiExit) -> int:
    last = [m for m in model.exits[0].modules() if isinstance(m, nn.Linear)][-1]
    return int(last.out_features)


@EDITS.register("attach_exits")
def _replay_attach(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Replay an ``attach_exits`` edit on a freshly built backbone."""
    args = {k: v for k, v in edit.items() if k != "kind"}
    return attach_exits(model, **args)


@EDITS.register("inline_collaboration")
def _replay_links(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Replay an ``inline_collaboration`` edit."""
    return add_inline_links_(model, width=int(edit["width"]), detach=bool(edit["detach"]))
