from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest
import torch

from leandl.checkpoint import load, read_meta, save
from leandl.errors import CheckpointError
from leandl.models import create_model


def _model():
    torch.manual_seed(0)
    return create_model("digits_cnn", num_classes=10, input_shape=[1, 8, 8])


def test_round_trip_same_outputs(tmp_path):
    m = _model().eval()
    save(m, tmp_path / "ck", metrics={"accuracy": 0.5})
    meta = read_meta(tmp_path / "ck")
    assert meta["spec"]["name"] == "digits_cnn" and meta["edits"] == [] and meta["metrics"]["accuracy"] == 0.5
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(load(tmp_path / "ck")(x), m(x), rtol=0, atol=0)
    assert not list(tmp_path.glob(".ck.tmp-*")), "temporary directory left behind"


def test_altered_weights_refused(tmp_path):
    save(_model(), tmp_path / "ck")
    w = tmp_path / "ck" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="altered"):
        load(tmp_path / "ck")


def test_import_path_spec_needs_trust_and_never_runs(tmp_path):
    save(_model(), tmp_path / "ck")
    meta_path = tmp_path / "ck" / "leandl.json"
    meta = json.loads(meta_path.read_text())
    marker = tmp_path / "pwned"
    meta["spec"] = {"name": "os:system", "kwargs": {"command": f"touch {marker}"}}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="outside leandl's registry"):
        load(tmp_path / "ck")
    assert not marker.exists()


def test_pickle_renamed_to_safetensors_refused(tmp_path):
    save(_model(), tmp_path / "ck")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (__import__("os").system, (f"touch {marker}",))

    w = tmp_path / "ck" / "model.safetensors"
    w.write_bytes(pickle.dumps(Evil()))
    meta_path = tmp_path / "ck" / "leandl.json"
    meta = json.loads(meta_path.read_text())
    from leandl.checkpoint import sha256_file

    meta["weights_sha256"] = sha256_file(w)  # the attacker fixes the hash too
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="safetensors"):
        load(tmp_path / "ck")
    assert not marker.exists()


def test_model_without_spec_cannot_be_saved(tmp_path):
    with pytest.raises(CheckpointError, match="build spec"):
        save(torch.nn.Linear(2, 2), tmp_path / "ck")


def test_reload_in_fresh_process(tmp_path):
    m = _model().eval()
    save(m, tmp_path / "ck")
    x = torch.randn(2, 1, 8, 8)
    torch.save(x, tmp_path / "x.pt")
    code = (
        "import torch, sys; from leandl.checkpoint import load; "
        f"m = load(r'{tmp_path / 'ck'}'); x = torch.load(r'{tmp_path / 'x.pt'}', weights_only=True); "
        f"torch.save(m(x).detach(), r'{tmp_path / 'y.pt'}')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    torch.testing.assert_close(torch.load(tmp_path / "y.pt", weights_only=True), m(x), rtol=0, atol=1e-6)
