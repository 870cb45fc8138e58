from __future__ import annotations

import json

import pytest
import torch

from leandl.errors import CheckpointError
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


def _raw_safetensors(path, header, data=b""):
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + data)
    return path


@pytest.mark.parametrize("header,data,match", [
    ({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 4]}}, b"\0" * 4, "needs more bytes"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 80]}}, b"\0" * 8, "outside the 8 data bytes"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 12, "does not match its 8 bytes"),
    ({"a": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "unknown dtype"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "non-negative"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "declare 8 bytes"),
    ({"__metadata__": {"x": [1, 2]}}, b"", "__metadata__"),
    ([1, 2, 3], b"", "not a JSON object"),
])
def test_safetensors_header_checked_against_the_file(tmp_path, header, data, match):
    from leandl.serialization import check_safetensors

    with pytest.raises(CheckpointError, match=match):
        check_safetensors(_raw_safetensors(tmp_path / "x.safetensors", header, data))


def test_safetensors_header_length_and_tensor_count_bounded(tmp_path):
    from leandl.serialization import check_safetensors

    bomb = tmp_path / "len.safetensors"
    bomb.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="declares 4611686018427387904 bytes"):
        check_safetensors(bomb)
    many = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(50)}
    with pytest.raises(CheckpointError, match="50 tensors, more than the 10 allowed"):
        check_safetensors(_raw_safetensors(tmp_path / "many.safetensors", many), max_tensors=10)
    deep = tmp_path / "deep.safetensors"
    blob = b"[" * 100000 + b"]" * 100000
    deep.write_bytes(len(blob).to_bytes(8, "little") + blob)
    with pytest.raises(CheckpointError, match="nests too deeply|not valid JSON"):
        check_safetensors(deep)


def test_load_tree_refuses_dangling_tensor_refs_and_deep_skeletons(tmp_path):
    save_tree({"a": torch.ones(2)}, tmp_path, "state")
    (tmp_path / "state.json").write_text(json.dumps({"a": {"__tensor__": "nope"}}))
    with pytest.raises(CheckpointError, match="'nope'"):
        load_tree(tmp_path, "state")
    (tmp_path / "state.json").write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(CheckpointError):
        load_tree(tmp_path, "state")
