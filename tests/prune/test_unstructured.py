"""Unstructured magnitude pruning: masks by hand, folding without hooks, honest storage size."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.utils.prune
from torch import nn

from leandl.prune.unstructured import (
    compressed_storage, fold_masks_, magnitude_masks, prune_unstructured_, storage_report, weight_sparsity,
)


def test_global_and_layerwise_masks_by_hand() -> None:
    w = {"a": torch.tensor([0.1, -0.5, 0.3, 0.05]), "b": torch.tensor([1.0, -0.2])}
    g = magnitude_masks(w, 0.5, "global")  # 3 of 6 smallest |w|: .05, .1, .2
    assert g["a"].tolist() == [False, True, True, False] and g["b"].tolist() == [True, False]
    lw = magnitude_masks(w, 0.5, "layerwise")  # a loses 2 (.05, .1), b loses 1 (.2)
    assert lw["a"].tolist() == [False, True, True, False] and lw["b"].tolist() == [True, False]
    lw2 = magnitude_masks(w, 0.25, "layerwise")  # a loses floor(1) = 1, b floor(0.5) = 0
    assert lw2["a"].tolist() == [True, True, True, False] and lw2["b"].tolist() == [True, True]


def test_fold_removes_torch_prune_hooks_and_keeps_deepcopy() -> None:
    lin = nn.Linear(4, 2)
    torch.nn.utils.prune.l1_unstructured(lin, "weight", amount=0.5)
    assert hasattr(lin, "weight_orig")
    assert fold_masks_(lin) == 1
    assert not hasattr(lin, "weight_orig") and float((lin.weight == 0).float().mean()) == 0.5
    copy.deepcopy(lin)


def test_storage_size_by_hand_and_dense_latency_reported() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 4))
    prune_unstructured_(model, 0.75, "global")
    assert weight_sparsity(model) == pytest.approx(0.75, abs=1e-9)
    rep = compressed_storage(model)
    nnz = 112 - 84  # 80 + 32 weights, 84 removed
    biases = 4 * (8 + 4)
    assert rep.dense_bytes == 4 * 112 + biases
    assert rep.bitmask_bytes == (10 + 4) + 4 * nnz + biases  # ceil(80/8) + ceil(32/8) mask bytes
    assert rep.csr_bytes == 4 * nnz + 2 * nnz + 4 * (8 + 1) + 4 * (4 + 1) + biases
    assert rep.bitmask_bytes < rep.dense_bytes
    full = storage_report(model, torch.randn(1, 10), batch_sizes=(1, 4), repeats=2)
    assert set(full.dense_latency_ms) == {1, 4} and full.dense_latency_ms[1] > 0
