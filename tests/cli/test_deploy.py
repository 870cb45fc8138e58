"""``leandl deploy CKPT``: measures the eligible backends, writes the fastest within tolerance."""

from __future__ import annotations

import json
import math

import pytest
import torch

pytest.importorskip("onnxruntime")

from leandl.checkpoint import save  # noqa: E402
from leandl.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory):
    from leandl.data import load_data
    from leandl.models import create_model
    from leandl.train.config import TrainConfig
    from leandl.train.trainer import Trainer

    digits = load_data("digits", seed=0)
    torch.manual_seed(0)
    model = create_model("digits_cnn", num_classes=10, input_shape=(1, 8, 8), width=8)
    cfg = TrainConfig(epochs=4, batch_size=64, optimizer="adam", lr=0.01, progress=False, checkpoint_every=0)
    Trainer(model, cfg, train_data=digits.train, val_data=digits.val, num_classes=10).fit()
    return save(model.eval(), tmp_path_factory.mktemp("ck") / "c")


def test_deploy_with_real_data_writes_the_fastest_within_tolerance(trained_ckpt, tmp_path, capsys) -> None:
    out = tmp_path / "dep"
    code = main(["deploy", str(trained_ckpt), "--quick", "--data", "digits", "--batch-sizes", "1,16",
                 "--threads", "1", "--repeats", "4", "--check-size", "128", "--out", str(out), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads((out / "deploy.json").read_text())
    assert doc["inputs"] == "digits" and doc["calibration"] == "data digits"
    from leandl.measure import cpu_description

    assert doc["cpu"] == cpu_description()  # which CPU the timings belong to
    assert doc["tolerance"] == {"max_accuracy_drop": 0.01} and doc["reference_accuracy"] > 0.8
    # eligible on a CNN: eager, channels-last, ORT fp32 and static int8; the others skipped with a reason
    timed = {r["backend"] for r in doc["rows"]}
    assert {"eager", "eager-channels-last", "onnxruntime"} <= timed
    assert "onnxruntime-int8" in timed or doc["skipped"]["onnxruntime-int8"].startswith("out of tolerance")
    assert "slow to build" in doc["skipped"]["compile"] or "compiler" in doc["skipped"]["compile"]
    assert "MatMul/Gemm" in doc["skipped"]["onnxruntime-dynamic-int8"]
    assert {(r["batch_size"], r["threads"]) for r in doc["rows"]} == {(1, 1), (16, 1)}
    assert all(r["accuracy"] >= doc["reference_accuracy"] - 0.01 for r in doc["rows"])
    # the chosen backend has the lowest geometric-mean latency ratio to eager
    geo = {n: math.prod(r["latency_ms"] / next(e["latency_ms"] for e in doc["rows"] if e["backend"] == "eager"
                                                and e["batch_size"] == r["batch_size"])
                        for r in doc["rows"] if r["backend"] == n) for n in timed}
    assert doc["backend"] == min(geo, key=geo.get)
    assert len(doc["loadavg_before"]) == 3
    if doc["backend"].startswith("onnxruntime"):
        from leandl.data import load_data
        from leandl.deploy import OrtModule

        run = OrtModule(out / doc["artifact"], threads=1)
        digits = load_data("digits", seed=0)
        x = torch.stack([digits.test[i][0] for i in range(128)]).float()
        y = torch.tensor([int(digits.test[i][1]) for i in range(128)])
        acc = float((run(x).argmax(-1) == y).float().mean())
        assert acc == pytest.approx(doc["checks"][doc["backend"]]["accuracy"], abs=1e-9)
    else:
        assert doc["artifact"] == str(trained_ckpt)


def test_deploy_terminal_table_and_synthetic_inputs_skip_uncalibrated_int8(trained_ckpt, tmp_path, capsys) -> None:
    code = main(["deploy", str(trained_ckpt), "--quick", "--backends", "eager,onnxruntime,onnxruntime-int8",
                 "--batch-sizes", "2", "--threads", "1", "--repeats", "2", "--out", str(tmp_path / "d")])
    assert code == 0
    text = capsys.readouterr().out
    assert "inputs synthetic, calibration none" in text and "vs eager" in text and "cosine" in text
    assert "not deployed: onnxruntime-int8: skipped: static int8 needs calibration batches" in text
    assert "chosen: " in text and "min_cosine 0.99" in text


def test_deploy_random_calibration_is_labelled(trained_ckpt, tmp_path, capsys) -> None:
    with pytest.warns(UserWarning, match="random inputs"):
        code = main(["deploy", str(trained_ckpt), "--quick", "--backends", "onnxruntime-int8", "--random-calibration",
                     "--batch-sizes", "2", "--threads", "1", "--repeats", "2", "--out", str(tmp_path / "d"), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["calibration"] == "random (asked for)"
    assert {r["backend"] for r in doc["rows"]} >= {"eager"}


@pytest.mark.parametrize("args, option", [
    (["--max-accuracy-drop", "200"], "--max-accuracy-drop"),
    (["--min-cosine", "1.5"], "--min-cosine"),
    (["--backends", "onnxruntim"], "--backends"),
    (["--batch-sizes", "0"], "--batch-sizes"),
])
def test_deploy_bad_options_name_the_option(trained_ckpt, tmp_path, capsys, args, option) -> None:
    code = main(["deploy", str(trained_ckpt), "--out", str(tmp_path / "d"), *args])
    assert code == 2
    assert option in capsys.readouterr().err


def test_deploy_token_model_with_dict_outputs_offers_dynamic_int8(tmp_path, capsys) -> None:
    """A Hugging Face BERT checkpoint (token ids in, ModelOutput out): Linear-heavy, so dynamic
    int8 is eligible and channels-last is not; every int8 file is checked by cosine to eager."""
    from leandl._compat_torchvision import import_torchvision

    import_torchvision()
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    ckpt = save(transformers.BertModel(cfg).eval(), tmp_path / "bert")
    with pytest.warns(UserWarning, match="random inputs"):
        code = main(["deploy", str(ckpt), "--quick", "--random-calibration", "--input-dtype", "int64",
                     "--input-shape", "1,32", "--calibration-batches", "2", "--check-size", "16",
                     "--batch-sizes", "4", "--threads", "1", "--repeats", "2", "--out", str(tmp_path / "d"),
                     "--json", "--trust"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tolerance"] == {"min_cosine": 0.99} and doc["calibration"] == "random (asked for)"
    assert "4-D image" in doc["skipped"]["eager-channels-last"]
    assert "onnxruntime-dynamic-int8" in doc["checks"]
    for name, check in doc["checks"].items():
        assert check["accuracy"] is None
        within = any(r["backend"] == name for r in doc["rows"])
        assert within == (check["cosine"] >= 0.99 or name == "eager")
    assert doc["backend"] in {r["backend"] for r in doc["rows"]}
