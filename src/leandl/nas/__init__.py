"""Neural architecture search: a differentiable cell search (DARTS, arXiv 1806.09055) and NAS-KD.

- :mod:`leandl.nas.space` -- the candidate operations on a cell's edges (1-D and 2-D)
- :mod:`leandl.nas.cell` -- cells and the macro network shared by supernet and derived model
- :mod:`leandl.nas.darts` -- :class:`MixedOp`, the supernet and :func:`darts_search`
  (first-order alternating weight/alpha steps; optional MACs penalty; optional teacher: NAS-KD)
- :mod:`leandl.nas.derive` -- :func:`derive_genotype` (DARTS's top-2 rule), the registered model
  ``nas_cellnet`` built from a JSON genotype, and :func:`fit_width` (widest net within a MACs target)

From a recipe: the ``nas`` stage (:mod:`leandl.recipes.stages.nas`).
"""

from __future__ import annotations

from leandl.nas.darts import MixedOp, SearchConfig, SearchNet, SearchResult, darts_search
from leandl.nas.derive import cellnet_macs, check_genotype, derive_genotype, fit_width, nas_cellnet
from leandl.nas.space import OPS, PRIMITIVES, build_op

__all__ = ["OPS", "PRIMITIVES", "build_op", "MixedOp", "SearchNet", "SearchConfig", "SearchResult",
           "darts_search", "derive_genotype", "check_genotype", "nas_cellnet", "fit_width", "cellnet_macs"]
