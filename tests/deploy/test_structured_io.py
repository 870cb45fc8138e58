"""Inputs and outputs of any structure: token ids, keyword inputs, dict/dataclass outputs, int8 of a BERT."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from leandl.deploy import TensorDataReader, check_onnx, export_onnx, ptq_onnx  # noqa: E402
from leandl.deploy.calibration import calibration_from_loader  # noqa: E402
from leandl.deploy.io import flatten_outputs, primary_output  # noqa: E402
from leandl.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class DictNet(nn.Module):
    """Two keyword inputs (float features, int64 ids) and a dict output."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.fc = nn.Linear(8, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, feats: torch.Tensor, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.relu(self.fc(feats + self.emb(ids).mean(1)))
        return {"features": h, "logits": self.head(h), "unused": None}


@dataclass
class Out:
    hidden: torch.Tensor
    extra: tuple[torch.Tensor, ...]


class DataclassNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> Out:
        h = self.fc(x) * scale
        return Out(hidden=h, extra=(h.sum(-1), h.amax(-1)))


def test_dict_output_and_keyword_int_inputs_check_onnx(tmp_path) -> None:
    torch.manual_seed(0)
    net = DictNet().eval()
    inputs = {"feats": torch.randn(4, 8), "ids": torch.randint(0, 20, (4, 6))}
    path = export_onnx(net, inputs, tmp_path / "d.onnx")
    other = {"feats": torch.randn(7, 8), "ids": torch.randint(0, 20, (7, 9))}  # new batch and sequence length
    res = check_onnx(net, path, other)
    assert set(res.outputs) == {"features", "logits"}
    assert res.max_abs_diff < 1e-5 and res.top1_agreement == 1.0 and res.cosine > 0.9999
    assert res.batch_size == 7


def test_dynamo_exporter_takes_keyword_inputs_and_dict_outputs(tmp_path) -> None:
    torch.manual_seed(0)
    net = DictNet().eval()
    inputs = {"feats": torch.randn(4, 8), "ids": torch.randint(0, 20, (4, 6))}
    path = export_onnx(net, inputs, tmp_path / "d.onnx", exporter="dynamo")
    res = check_onnx(net, path, {"feats": torch.randn(7, 8), "ids": torch.randint(0, 20, (7, 9))})
    assert set(res.outputs) == {"features", "logits"} and res.max_abs_diff < 1e-5


def test_dataclass_output_tuple_inputs_with_a_constant(tmp_path) -> None:
    torch.manual_seed(0)
    net = DataclassNet().eval()
    x = torch.randn(3, 4)
    path = export_onnx(net, (x, {"scale": 2.0}), tmp_path / "c.onnx")
    res = check_onnx(net, path, (torch.randn(5, 4), {"scale": 2.0}))
    assert list(res.outputs) == ["hidden", "extra.0", "extra.1"] and res.max_abs_diff < 1e-5
    assert primary_output(net(x)) is not None and [n for n, _ in flatten_outputs(net(x))][0] == "hidden"


def test_data_reader_keeps_token_ids_integer_and_casts_to_graph_dtypes() -> None:
    ids = torch.randint(0, 9, (2, 5))
    feed = TensorDataReader([{"b": torch.ones(2, 5, dtype=torch.float64), "a": ids}], ["a", "b"]).get_next()
    assert feed["a"].dtype.name == "int64" and feed["b"].dtype.name == "float32"
    import numpy as np

    feed = TensorDataReader([(ids, ids)], ["x", "m"], [np.int64, np.int32]).get_next()
    assert feed["x"].dtype == np.int64 and feed["m"].dtype == np.int32


def test_random_calibration_only_when_asked_and_labelled(tmp_path) -> None:
    torch.manual_seed(0)
    net = DictNet().eval()
    inputs = {"feats": torch.randn(4, 8), "ids": torch.randint(0, 20, (4, 6))}
    with pytest.raises(ConfigError, match="calibration"):
        ptq_onnx(net, inputs, tmp_path / "a")
    with pytest.warns(UserWarning, match="random inputs"):
        res = ptq_onnx(net, inputs, tmp_path / "b", random_calibration=True)
    assert res.calibration.startswith("random")
    res = ptq_onnx(net, inputs, tmp_path / "c", calibration=[inputs])
    assert res.calibration == "1 given batches"


def _token_batches(vocab: int, seq: int, batch: int) -> list[dict[str, torch.Tensor]]:
    """Real text (this repository's docs) as token batches: words hashed into the vocabulary
    (0 = padding), sentences padded to ``seq`` with attention masks."""
    text = (ROOT / "docs" / "measurement.md").read_text()
    sentences = [s.split() for s in re.split(r"[.\n]\s*", text) if len(s.split()) >= 4]
    rows, masks = [], []
    for words in sentences:
        ids = [1 + (sum(map(ord, w.lower())) * 31 % (vocab - 1)) for w in words][:seq]
        rows.append(ids + [0] * (seq - len(ids)))
        masks.append([1] * len(ids) + [0] * (seq - len(ids)))
    ids_t, mask_t = torch.tensor(rows), torch.tensor(masks)
    return [{"input_ids": ids_t[i:i + batch], "attention_mask": mask_t[i:i + batch]}
            for i in range(0, len(rows) - batch + 1, batch)]


def test_tiny_bert_static_int8_on_real_token_batches(tmp_path) -> None:
    from leandl._compat_torchvision import import_torchvision

    import_torchvision()
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    bert = transformers.BertModel(cfg).eval()
    batches = _token_batches(100, 32, 8)
    assert len(batches) >= 6 and any(bool((b["attention_mask"] == 0).any()) for b in batches)
    cal = calibration_from_loader(batches[:-2], 4)
    assert cal[0]["input_ids"].dtype == torch.int64
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no random calibration behind our back
        res = ptq_onnx(bert, cal[0], tmp_path, calibration=cal)
    assert res.calibration == "4 given batches" and res.size_ratio > 2
    held_out = {k: torch.cat([b[k] for b in batches[-2:]]) for k in batches[0]}
    fp32 = check_onnx(bert, res.fp32_path, held_out)
    int8 = check_onnx(bert, res.int8_path, held_out)
    cos = int8.outputs["last_hidden_state"]["cosine"]
    print(f"tiny BERT static int8 vs eager: cosine(last_hidden_state) = {cos:.6f}, "
          f"max|diff| = {int8.outputs['last_hidden_state']['max_abs_diff']:.4f}")
    assert fp32.max_abs_diff < 1e-4
    assert cos >= 0.9
