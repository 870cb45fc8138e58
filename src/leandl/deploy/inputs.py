"""Inputs for export and benchmarking from the command line: real data when named, else synthetic.

``leandl bench``/``leandl export`` take a checkpoint. The sample shape comes from
``--input-shape`` or, when omitted, from the checkpoint's model spec (``input_shape`` kwarg).
With ``--data NAME`` the check batch is real test inputs and calibration batches are real
training inputs. Without it the check batch is seeded synthetic inputs (labelled
``synthetic``: standard-normal floats, or with ``dtype="int64"`` token ids uniform over the
vocabulary) and there are no calibration batches unless random ones are asked for
(``random_calibration=True``, ``--random-calibration``), which warns and is labelled in
:attr:`DeployInputs.calibration_source`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from leandl.deploy.calibration import calibration_batches
from leandl.errors import UsageError

__all__ = ["DeployInputs", "checkpoint_input_shape", "deploy_inputs", "model_vocab_size"]


@dataclass
class DeployInputs:
    """A check batch, calibration batches, and where they came from.

    Attributes:
        check: the check batch.
        calibration: calibration batches (empty when none are available).
        source: where the check batch came from: ``"synthetic"`` or the data set's name.
        calibration_source: ``"data NAME"``, ``"random (asked for)"`` or ``"none"``.
        labels: the check batch's class labels (real data only), else ``None``.
    """

    check: torch.Tensor
    calibration: list[torch.Tensor]
    source: str
    calibration_source: str = "none"
    labels: torch.Tensor | None = None


def checkpoint_input_shape(path: str | Path, given: list[int] | None) -> tuple[int, ...]:
    """One sample's shape (no batch dim): ``given`` (batch first, batch dropped) or the spec's."""
    if given:
        return tuple(given[1:])
    from leandl.checkpoint import read_meta

    shape = read_meta(path)["spec"].get("kwargs", {}).get("input_shape")
    if not shape:
        raise UsageError("the checkpoint does not record its input shape", where="--input-shape",
                         fix="pass it, batch first: --input-shape 1,3,32,32")
    return tuple(int(s) for s in shape)


def model_vocab_size(model: Any) -> int | None:
    """The model's vocabulary size: ``config.vocab_size`` (Hugging Face), else the first
    ``nn.Embedding``'s ``num_embeddings``; ``None`` when it has neither."""
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(vocab, int) and vocab > 0:
        return vocab
    emb = next((m for m in model.modules() if isinstance(m, torch.nn.Embedding)), None) if hasattr(model, "modules") else None
    return int(emb.num_embeddings) if emb is not None else None


def deploy_inputs(sample_shape: tuple[int, ...], *, data: str | None = None, root: str | None = None,
                  check_size: int = 256, calibration: int = 8, batch_size: int = 32, seed: int = 0,
                  dtype: str = "float32", vocab_size: int | None = None,
                  random_calibration: bool = False) -> DeployInputs:
    """Check and calibration inputs of ``sample_shape`` from data set ``data`` or synthetic.

    Args:
        sample_shape: one sample's shape (no batch dim); ``(sequence,)`` for token ids.
        data, root: a leandl data set and its folder (real inputs), or ``None``.
        check_size, calibration, batch_size, seed: check samples, calibration batches and their
            size, seed of synthetic inputs.
        dtype: ``"float32"`` or an integer dtype (``"int64"``: token ids) of synthetic inputs.
        vocab_size: range of synthetic token ids (required for integer ``dtype``).
        random_calibration: without ``data``, make random calibration batches (warns).
    """
    if dtype not in ("float32", "int64", "int32"):
        raise UsageError(f"unknown input dtype '{dtype}'", where="--input-dtype", fix="use float32 or int64")
    if data is None:
        g = torch.Generator().manual_seed(seed)

        def draw(n: int) -> torch.Tensor:
            if dtype == "float32":
                return torch.randn(n, *sample_shape, generator=g)
            if not vocab_size:
                raise UsageError("integer inputs need a vocabulary size and the model has none",
                                 where="--input-dtype", fix="use a model with an nn.Embedding or config.vocab_size")
            return torch.randint(0, vocab_size, (n, *sample_shape), generator=g, dtype=getattr(torch, dtype))

        check = draw(check_size)
        if not random_calibration:
            return DeployInputs(check, [], "synthetic", "none")
        warnings.warn("calibrating int8 ranges on random inputs (asked for): expect worse accuracy than with "
                      "real inputs (--data)", UserWarning, stacklevel=2)
        cal = [draw(batch_size) for _ in range(calibration)]
        return DeployInputs(check, cal, "synthetic", "random (asked for)")
    from leandl.data import load_data

    bundle = load_data(data, root=root, seed=seed)
    if tuple(bundle.input_shape) != tuple(sample_shape):
        raise UsageError(f"data set '{data}' has samples of shape {tuple(bundle.input_shape)}, the model "
                         f"expects {tuple(sample_shape)}", where="--data", fix="pick the data set the model was trained on")
    n = min(check_size, len(bundle.test))
    check = torch.stack([torch.as_tensor(bundle.test[i][0]) for i in range(n)]).float()
    labels = torch.as_tensor([int(bundle.test[i][1]) for i in range(n)], dtype=torch.long)
    cal = calibration_batches(bundle.train, calibration, batch_size, seed=seed)
    return DeployInputs(check, cal, data, f"data {data}", labels)
