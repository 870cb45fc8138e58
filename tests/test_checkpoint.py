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


def test_unregistered_model_name_says_to_import_its_registering_module(tmp_path):
    """A plain name nobody registered in this process is not "code outside the registry" (that
    message is for import paths, which --trust can allow): say what to import instead."""
    save(_model(), tmp_path / "ck")
    meta_path = tmp_path / "ck" / "leandl.json"
    meta = json.loads(meta_path.read_text())
    meta["spec"] = {"name": "my_private_net", "kwargs": {}}
    meta_path.write_text(json.dumps(meta))
    for trust in (False, True):
        with pytest.raises(CheckpointError, match="'my_private_net' is not a registered model name") as info:
            load(tmp_path / "ck", trust=trust)
        assert "@MODELS.register" in info.value.fix and "resnet20" in info.value.fix


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


# --- hostile leandl.json: library specs that would download, read files or run remote code ------

def _with_spec(tmp_path, spec):
    """A valid checkpoint whose leandl.json now names ``spec`` (the weights hash still matches)."""
    save(_model(), tmp_path / "ck")
    meta_path = tmp_path / "ck" / "leandl.json"
    meta = json.loads(meta_path.read_text())
    meta["spec"] = spec
    meta_path.write_text(json.dumps(meta))
    return tmp_path / "ck"


@pytest.mark.parametrize(("spec", "key"), [
    ({"name": "timm:resnet18", "kwargs": {"checkpoint_path": "/tmp/evil.pth"}}, "checkpoint_path"),
    ({"name": "timm:resnet18", "kwargs": {"pretrained": True}}, "'pretrained'=True"),
    ({"name": "timm:resnet18", "kwargs": {"pretrained_cfg_overlay": {"file": "evil.bin"}}},
     "pretrained_cfg_overlay.file"),
    ({"name": "timm:resnet18", "kwargs": {"pretrained_cfg_overlay": {"url": "https://example.invalid/w"}}},
     "pretrained_cfg_overlay.url"),
    ({"name": "timm:hf-hub:someone/evil", "kwargs": {}}, "hf-hub:someone/evil"),
    ({"name": "timm:hf_hub:someone/evil", "kwargs": {}}, "hf_hub:someone/evil"),
    ({"name": "timm:resnet18", "kwargs": {"act_layer": "~/evil.py"}}, "act_layer"),
    ({"name": "torchvision:resnet18", "kwargs": {"weights": "DEFAULT"}}, "'weights'='DEFAULT'"),
    ({"name": "torchvision:fasterrcnn_resnet50_fpn", "kwargs": {"weights_backbone": "DEFAULT"}},
     "weights_backbone"),
    ({"name": "torchvision:resnet18", "kwargs": {"norm_layer": "C:\\evil.dll"}}, "norm_layer"),
    ({"name": "hf:BertModel", "kwargs": {"config": {"auto_map": {"AutoModel": "evil.Model"}}}},
     "config.auto_map"),
    ({"name": "hf:BertModel", "kwargs": {"config": {"trust_remote_code": True}}}, "config.trust_remote_code"),
    ({"name": "hf:DetrModel", "kwargs": {"config": {"use_pretrained_backbone": True}}},
     "config.use_pretrained_backbone"),
    ({"name": "hf:DetrModel", "kwargs": {"config": {"backbone": "someone/evil-backbone"}}}, "config.backbone"),
    ({"name": "hf:CLIPModel", "kwargs": {"config": {"vision_config": {"auto_map": {"x": "y"}}}}},
     "config.vision_config.auto_map"),
    ({"name": "hf:BertModel", "kwargs": {"config": {}, "attn_implementation": "someone/kernels"}},
     "attn_implementation"),
])
def test_hostile_library_spec_refused_naming_the_key(tmp_path, spec, key):
    ck = _with_spec(tmp_path, spec)
    with pytest.raises(CheckpointError, match="trust=True") as info:
        load(ck)
    assert key in str(info.value)


def test_hostile_library_spec_never_reaches_the_library(tmp_path, monkeypatch):
    import leandl.models.factory as factory

    called = []
    for prefix in ("torchvision", "timm", "hf"):
        monkeypatch.setitem(factory._ADAPTER_FUNCS, prefix, lambda *a, **k: called.append(a))
    ck = _with_spec(tmp_path, {"name": "timm:resnet18", "kwargs": {"checkpoint_path": str(tmp_path / "w.pth")}})
    with pytest.raises(CheckpointError, match="checkpoint_path"):
        load(ck)
    assert called == []


def test_hf_bookkeeping_paths_are_not_risks():
    from leandl.models import spec_risks

    config = {"_name_or_path": "/home/me/models/bert", "id2label": {"0": "N/A", "1": "a/b"},
              "task_specific_params": {"translation": {"prefix": "translate en/de: "}}, "hidden_size": 32}
    assert spec_risks("hf:BertModel", {"config": config}) == []
    assert spec_risks("timm:resnet18", {"num_classes": 10, "global_pool": "avg", "pretrained": False}) == []
    assert spec_risks("torchvision:resnet18", {"num_classes": 10, "weights": None}) == []
    assert spec_risks("resnet20", {"anything": "/etc/passwd"}) == []  # registry factories read no files


# --- what is stored beside the weights ----------------------------------------------------------

class _Versioned(torch.nn.Module):
    """Refuses a state dict without its version, like torchvision's MNASNet."""

    _version = 3

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        if local_metadata.get("version") != 3:
            raise ValueError(f"version 3 expected, got {local_metadata.get('version')}")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)


def test_module_versions_are_recorded_and_restored(tmp_path):
    m = _Versioned()
    save(m, tmp_path / "ck")
    meta = read_meta(tmp_path / "ck")
    assert meta["spec"]["name"] == f"{__name__}:_Versioned"
    assert meta["state_dict_metadata"][""] == {"version": 3}
    assert meta["state_dict_metadata"]["fc"] == {"version": 1}
    loaded = load(tmp_path / "ck", trust=True)
    torch.testing.assert_close(loaded.fc.weight, m.fc.weight, rtol=0, atol=0)
    # a checkpoint written before versions were recorded gets the rebuilt modules' versions
    meta_path = tmp_path / "ck" / "leandl.json"
    raw = json.loads(meta_path.read_text())
    del raw["state_dict_metadata"]
    meta_path.write_text(json.dumps(raw))
    load(tmp_path / "ck", trust=True)


def test_malformed_versions_refused(tmp_path):
    save(_model(), tmp_path / "ck")
    meta_path = tmp_path / "ck" / "leandl.json"
    raw = json.loads(meta_path.read_text())
    raw["state_dict_metadata"] = {"": {"version": "3; rm -rf /"}}
    meta_path.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="state_dict_metadata"):
        load(tmp_path / "ck")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_are_restored(tmp_path, dtype):
    m = _model().to(dtype).eval()
    save(m, tmp_path / "ck")
    loaded = load(tmp_path / "ck")
    assert {p.dtype for p in loaded.parameters()} == {dtype}
    x = torch.randn(2, 1, 8, 8, dtype=dtype)
    torch.testing.assert_close(loaded(x), m(x), rtol=0, atol=0)


def test_load_does_not_touch_the_global_rng(tmp_path):
    save(_model(), tmp_path / "ck")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load(tmp_path / "ck")
    torch.testing.assert_close(torch.rand(3), expected)


# --- models leandl did not build: spec=, derived specs ---------------------------------------------

_USER_MODULE = '''
import torch
from torch import nn


class NoArgs(nn.Module):
    def __init__(self, width: int = 5):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Dropout(0.1), nn.Linear(width, 3))
        self.register_buffer("offset", torch.zeros(3), persistent=False)

    def forward(self, x):
        return self.body(x) + self.offset


class NeedsArgs(nn.Module):
    def __init__(self, width, depth=1):
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(4 if i == 0 else width, width) for i in range(depth)])

    def forward(self, x):
        return self.layers(x)


def build(width=4, depth=1):
    return NeedsArgs(width, depth)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "leandl_ck_user.py").write_text(_USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("leandl_ck_user")
    yield mod
    sys.modules.pop("leandl_ck_user", None)


def test_argument_free_class_is_saved_by_import_path(tmp_path, user_module):
    torch.manual_seed(0)
    m = user_module.NoArgs().eval()
    save(m, tmp_path / "ck")
    assert read_meta(tmp_path / "ck")["spec"] == {"name": "leandl_ck_user:NoArgs", "kwargs": {}}
    with pytest.raises(CheckpointError, match="outside leandl's registry"):
        load(tmp_path / "ck")
    x = torch.randn(2, 4)
    torch.testing.assert_close(load(tmp_path / "ck", trust=True)(x), m(x), rtol=0, atol=0)


def test_derived_class_spec_must_rebuild_the_same_model(tmp_path, user_module):
    m = user_module.NoArgs(width=7)  # the no-argument build has width 5: not this model
    with pytest.raises(CheckpointError, match=r"build spec.*NoArgs.*body\.0.*spec=") as info:
        save(m, tmp_path / "ck")
    assert "7 in the model vs 5 rebuilt" in str(info.value)
    assert not (tmp_path / "ck").exists()


def test_class_with_required_arguments_says_what_to_pass(tmp_path, user_module):
    with pytest.raises(CheckpointError, match=r"needs constructor arguments \(width\).*spec=\{'name'"):
        save(user_module.NeedsArgs(6), tmp_path / "ck")


def test_local_class_says_why(tmp_path):
    class Local(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

    with pytest.raises(CheckpointError, match="defined in a script or a function"):
        save(Local(), tmp_path / "ck")


def test_user_spec_argument(tmp_path, user_module):
    torch.manual_seed(0)
    m = user_module.NeedsArgs(6, depth=2).eval()
    spec = {"name": "leandl_ck_user:build", "kwargs": {"width": 6, "depth": 2}}
    save(m, tmp_path / "ck", spec=spec)
    assert read_meta(tmp_path / "ck")["spec"] == spec
    x = torch.randn(2, 4)
    torch.testing.assert_close(load(tmp_path / "ck", trust=True)(x), m(x), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match=r"different model.*layers\.1"):
        save(m, tmp_path / "ck2", spec={"name": "leandl_ck_user:build", "kwargs": {"width": 6}})
    with pytest.raises(CheckpointError, match="does not build"):
        save(m, tmp_path / "ck2", spec={"name": "leandl_ck_user:build", "kwargs": {"wdth": 6}})
    with pytest.raises(CheckpointError, match="JSON"):
        save(m, tmp_path / "ck2", spec={"name": "leandl_ck_user:build", "kwargs": {"width": torch.ones(1)}})
    with pytest.raises(CheckpointError, match="must be"):
        save(m, tmp_path / "ck2", spec={"kwargs": {}})


def test_spec_argument_with_leandl_edits(tmp_path, user_module, monkeypatch):
    from leandl.registry import EDITS
    from leandl.spec import add_edit

    def widen(model, edit):  # a structural edit: replace the last layer by a wider one
        model.layers[-1] = torch.nn.Linear(model.layers[-1].in_features, edit["out"])
        add_edit(model, edit)
        return model

    EDITS._load()
    monkeypatch.setitem(EDITS._entries, "test_widen", widen)
    torch.manual_seed(0)
    m = widen(user_module.NeedsArgs(6), {"kind": "test_widen", "out": 9}).eval()
    save(m, tmp_path / "ck", spec={"name": "leandl_ck_user:NeedsArgs", "kwargs": {"width": 6}})
    meta = read_meta(tmp_path / "ck")
    assert meta["edits"] == [{"kind": "test_widen", "out": 9}]
    loaded = load(tmp_path / "ck", trust=True)
    assert loaded.layers[-1].out_features == 9
    x = torch.randn(2, 4)
    torch.testing.assert_close(loaded(x), m(x), rtol=0, atol=0)


def test_unsaved_buffer_dtypes_are_restored(tmp_path, user_module):
    m = user_module.NoArgs().to(torch.float64).eval()  # its non-persistent buffer too
    save(m, tmp_path / "ck")
    assert read_meta(tmp_path / "ck")["buffer_dtypes"] == {"offset": "float64"}
    loaded = load(tmp_path / "ck", trust=True)
    assert loaded.offset.dtype == torch.float64
    x = torch.randn(2, 4, dtype=torch.float64)
    torch.testing.assert_close(loaded(x), m(x), rtol=0, atol=0)


def test_malformed_buffer_dtypes_refused(tmp_path):
    save(_model(), tmp_path / "ck")
    meta_path = tmp_path / "ck" / "leandl.json"
    raw = json.loads(meta_path.read_text())
    raw["buffer_dtypes"] = {"x": "manual_seed"}
    meta_path.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="buffer_dtypes"):
        load(tmp_path / "ck")


def test_derived_spec_replays_edits(tmp_path, user_module, monkeypatch):
    from leandl.registry import EDITS
    from leandl.spec import add_edit

    def swap_act(model, edit):  # a structural edit on a model leandl did not build
        model.body[1] = torch.nn.GELU()
        add_edit(model, edit)
        return model

    EDITS._load()
    monkeypatch.setitem(EDITS._entries, "test_swap_act", swap_act)
    torch.manual_seed(0)
    m = swap_act(user_module.NoArgs(), {"kind": "test_swap_act"}).eval()
    save(m, tmp_path / "ck")
    meta = read_meta(tmp_path / "ck")
    assert meta["spec"]["name"] == "leandl_ck_user:NoArgs" and meta["edits"] == [{"kind": "test_swap_act"}]
    loaded = load(tmp_path / "ck", trust=True)
    assert isinstance(loaded.body[1], torch.nn.GELU)
    x = torch.randn(2, 4)
    torch.testing.assert_close(loaded(x), m(x), rtol=0, atol=0)


def _retarget(ck, **kwargs):
    meta_path = ck / "leandl.json"
    meta = json.loads(meta_path.read_text())
    meta["spec"]["kwargs"].update(kwargs)
    meta_path.write_text(json.dumps(meta))


def test_weight_mismatch_names_each_tensor_with_both_shapes(tmp_path):
    save(create_model("mlp", num_classes=3, input_shape=[4]), tmp_path / "ck")
    _retarget(tmp_path / "ck", num_classes=5)
    with pytest.raises(CheckpointError) as err:
        load(tmp_path / "ck")
    msg = str(err.value)
    assert "head.fc.weight (file [3, 128], model [5, 128])" in msg and "head.fc.bias (file [3], model [5])" in msg
    assert "2 tensor(s) with a different shape" in msg and "re-save the model" in msg


def test_weight_mismatch_names_missing_and_unexpected_tensors(tmp_path):
    from safetensors.torch import load_file, save_file

    from leandl.checkpoint import sha256_file

    ck = tmp_path / "ck"
    save(create_model("mlp", num_classes=3, input_shape=[4]), ck)
    tensors = load_file(str(ck / "model.safetensors"))
    tensors["extra.weight"] = torch.zeros(2)
    del tensors["head.fc.bias"]
    save_file(tensors, str(ck / "model.safetensors"))
    meta = json.loads((ck / "leandl.json").read_text())
    meta["weights_sha256"] = sha256_file(ck / "model.safetensors")
    (ck / "leandl.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as err:
        load(ck)
    msg = str(err.value)
    assert "1 tensor(s) missing from the file: head.fc.bias" in msg
    assert "1 tensor(s) not in the model: extra.weight" in msg


def test_huge_spec_is_refused_before_allocating(tmp_path):
    """A few bytes of metadata declaring a 51 GB head: refused from the meta-device build."""
    import resource

    save(create_model("mlp", num_classes=3, input_shape=[4]), tmp_path / "ck")
    _retarget(tmp_path / "ck", num_classes=10**8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"head.fc.weight \(file \[3, 128\], model \[100000000, 128\]\)"):
        load(tmp_path / "ck")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB


@pytest.mark.parametrize("member", ["model.safetensors", "leandl.json"])
def test_member_symlink_outside_or_fifo_is_refused(tmp_path, member):
    import os

    ck = tmp_path / "ck"
    save(create_model("mlp", num_classes=3, input_shape=[4]), ck)
    outside = tmp_path / "outside"
    outside.write_bytes((ck / member).read_bytes())
    (ck / member).unlink()
    (ck / member).symlink_to(outside)
    with pytest.raises(CheckpointError, match="outside the directory"):
        load(ck)
    (ck / member).unlink()
    os.mkfifo(ck / member)
    with pytest.raises(CheckpointError, match="not a regular file"):
        load(ck)
