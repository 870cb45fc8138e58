"""``leandl export --int8``: calibration inputs are real unless random ones are asked for, and labelled."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("onnxruntime")

from leandl.checkpoint import save  # noqa: E402
from leandl.cli import main  # noqa: E402
from leandl.models import create_model  # noqa: E402


@pytest.fixture()
def ckpt(tmp_path):
    torch.manual_seed(0)
    return save(create_model("digits_cnn", num_classes=10, input_shape=(1, 8, 8), width=8).eval(), tmp_path / "c")


def test_int8_without_data_needs_random_calibration_asked_for(ckpt, tmp_path, capsys) -> None:
    code = main(["export", str(ckpt), "--int8", "--out", str(tmp_path / "m.onnx")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--random-calibration" in err and "--data" in err
    assert not (tmp_path / "m.onnx").exists()


def test_random_calibration_is_labelled(ckpt, tmp_path, capsys) -> None:
    with pytest.warns(UserWarning, match="random inputs"):
        code = main(["export", str(ckpt), "--int8", "--random-calibration", "--calibration-batches", "2",
                     "--out", str(tmp_path / "m.onnx"), "--json"])
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["calibration"] == "random (asked for)" and info["inputs"] == "synthetic"
    assert info["max_abs_diff"] < 1e-4 and 0.9 < info["cosine"] <= 1.0 + 1e-9
    assert (tmp_path / "m.int8.onnx").is_file()


def test_token_model_checkpoint_exports_int8_from_the_cli(tmp_path, capsys) -> None:
    from leandl._compat_torchvision import import_torchvision

    import_torchvision()
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    ckpt = save(transformers.BertModel(cfg).eval(), tmp_path / "bert")
    with pytest.warns(UserWarning, match="random inputs"):
        code = main(["export", str(ckpt), "--int8", "--random-calibration", "--input-dtype", "int64",
                     "--input-shape", "1,32", "--calibration-batches", "2", "--out", str(tmp_path / "b.onnx"),
                     "--json", "--trust"])
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["max_abs_diff"] < 1e-4 and info["int8_cosine"] > 0.9
    assert info["calibration"] == "random (asked for)" and info["stem_padding"].startswith("not needed")
