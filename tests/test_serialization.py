from __future__ import annotations

import pytest
import torch

from leandl.serialization import atomic_dir, load_tree, resolve_dir, save_tree


def test_tree_round_trip(tmp_path):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1, momentum=0.9)
    opt.param_groups[0]["params"][0].grad = torch.ones(2)
    opt.step()
    tree = {"opt": opt.state_dict(), "t": (1, 2.5, "x", None), "rng": torch.get_rng_state(), "flag": True}
    save_tree(tree, tmp_path, "s")
    back = load_tree(tmp_path, "s")
    assert back["t"] == (1, 2.5, "x", None) and back["flag"] is True
    torch.testing.assert_close(back["rng"], tree["rng"])
    torch.testing.assert_close(back["opt"]["state"][0]["momentum_buffer"], torch.ones(2))
    assert back["opt"]["param_groups"][0]["lr"] == 0.1


def test_atomic_dir_keeps_old_on_failure(tmp_path):
    target = tmp_path / "ck"
    with atomic_dir(target) as d:
        (d / "a").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "a").write_text("new")
            raise RuntimeError("disk full")
    assert (target / "a").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_resolve_dir_finds_interrupted_swap(tmp_path):
    old = tmp_path / "ck.old-1234"
    old.mkdir()
    assert resolve_dir(tmp_path / "ck") == old


def test_non_tree_values_refused(tmp_path):
    with pytest.raises(TypeError, match="without pickle"):
        save_tree({"f": object()}, tmp_path, "s")
