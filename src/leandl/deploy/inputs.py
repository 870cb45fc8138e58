"""Inputs for export and benchmarking from the command line: real data when named, else synthetic.

``leandl bench``/``leandl export`` take a checkpoint. The sample shape comes from
``--input-shape`` or, when omitted, from the checkpoint's model spec (``input_shape`` kwarg).
With ``--data NAME`` the check batch is real test inputs and calibration batches are real
training inputs; without it both are seeded standard-normal tensors (labelled ``synthetic``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import torch

from leandl.deploy.calibration import calibration_batches
from leandl.errors import UsageError

__all__ = ["DeployInputs", "checkpoint_input_shape", "deploy_inputs"]


@dataclass
class DeployInputs:
    """A check batch, calibration batches, and where they came from (``"synthetic"`` or a data set)."""

    check: torch.Tensor
    calibration: list[torch.Tensor]
    source: str


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


def deploy_inputs(sample_shape: tuple[int, ...], *, data: str | None = None, root: str | None = None,
                  check_size: int = 256, calibration: int = 8, batch_size: int = 32, seed: int = 0) -> DeployInputs:
    """Check and calibration inputs of ``sample_shape`` from data set ``data`` or synthetic."""
    if data is None:
        g = torch.Generator().manual_seed(seed)
        check = torch.randn(check_size, *sample_shape, generator=g)
        cal = [torch.randn(batch_size, *sample_shape, generator=g) for _ in range(calibration)]
        return DeployInputs(check, cal, "synthetic")
    from leandl.data import load_data

    bundle = load_data(data, root=root, seed=seed)
    if tuple(bundle.input_shape) != tuple(sample_shape):
        raise UsageError(f"data set '{data}' has samples of shape {tuple(bundle.input_shape)}, the model "
                         f"expects {tuple(sample_shape)}", where="--data", fix="pick the data set the model was trained on")
    n = min(check_size, len(bundle.test))
    check = torch.stack([torch.as_tensor(bundle.test[i][0]) for i in range(n)]).float()
    cal = calibration_batches(bundle.train, calibration, batch_size, seed=seed)
    return DeployInputs(check, cal, data)
