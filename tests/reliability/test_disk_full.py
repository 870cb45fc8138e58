"""Disk full, for real: a 1-4 MiB tmpfs, so the kernel itself answers ENOSPC (issue 18, item 5).

``safetensors.torch.save_file`` reports ENOSPC as a ``SafetensorError`` (not an ``OSError``), which
used to reach the CLI as "unexpected SafetensorError ... bug in leandl".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from leandl.errors import TrainingError
from leandl.serialization import save_tree
from leandl.train import TrainConfig, Trainer
from tests_helpers import fast_recipe

from .conftest import fill

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_save_tree_raises_the_real_enospc(small_tmpfs) -> None:
    where = small_tmpfs("1m")
    with pytest.raises(OSError) as info:
        save_tree({"w": torch.zeros(512, 1024)}, where, "big")  # 2 MiB into 1 MiB
    assert info.value.errno == 28


def test_trainer_disk_full_keeps_previous_checkpoint(small_tmpfs, blobs) -> None:
    where = small_tmpfs("1m")
    train, val = blobs
    torch.manual_seed(0)
    # about 300 kB of weights + 300 kB of SGD momentum: epoch 1's state fits, a second copy beside it does not
    model = torch.nn.Sequential(torch.nn.Linear(4, 270), torch.nn.ReLU(), torch.nn.Linear(270, 270),
                                torch.nn.ReLU(), torch.nn.Linear(270, 3))
    cfg = TrainConfig(epochs=3, batch_size=16, progress=False, optimizer="sgd", momentum=0.9)
    with pytest.raises(TrainingError, match="No space left on device") as info:
        Trainer(model, cfg, train_data=train, val_data=val, num_classes=3, run_dir=where).fit()
    assert "previous checkpoint is intact" in str(info.value)
    state = json.loads((where / "resume" / "state.json").read_text())
    assert state["epoch"] == 1  # the epoch-1 checkpoint survived the failed epoch-2 write
    assert sorted(p.name for p in where.iterdir()) == ["resume"]  # no temporary directory left


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint_every", [1, 0], ids=["resume-state", "stage-checkpoint"])
def test_cli_run_on_a_full_disk_is_one_clear_line(small_tmpfs, tmp_path, checkpoint_every) -> None:
    where = small_tmpfs("4m")
    recipe = fast_recipe(defaults={"epochs": 1, "optimizer": "adam", "lr": 0.003, "progress": False,
                                   "checkpoint_every": checkpoint_every},
                         measure={"batch_sizes": [1], "repeats": 1, "warmup": 0, "latency": False, "energy": False})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    fill(where, 200_000)  # room for recipe.yaml and the logs, not for a 377 kB checkpoint
    res = subprocess.run([sys.executable, "-m", "leandl", "run", str(path), "--out", str(where / "run")],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "No space left on device" in res.stderr and "bug in leandl" not in res.stderr
    leftovers = [p for p in (where / "run").rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_extract_onto_a_full_disk_is_a_data_error_and_leaves_nothing(small_tmpfs, tmp_path) -> None:
    import io
    import tarfile

    from leandl.data import safe_extract
    from leandl.errors import DataError

    arch = tmp_path / "a.tar"
    with tarfile.open(arch, "w") as tf:
        for i in range(3):
            info = tarfile.TarInfo(f"d/f{i}.bin")
            info.size = 600_000
            tf.addfile(info, io.BytesIO(os.urandom(600_000)))
    where = small_tmpfs("1m")
    with pytest.raises(DataError, match="No space left on device"):
        safe_extract(arch, where / "out")
    assert list(where.iterdir()) == []


def test_safetensor_error_is_read_for_its_errno() -> None:
    from safetensors import SafetensorError

    from leandl.serialization import as_os_error

    for text, code in [("I/O error: No space left on device (os error 28)", 28),
                       ("I/O error: Read-only file system (os error 30)", 30)]:
        err = as_os_error(SafetensorError(f"Error while serializing: {text}"))
        assert err is not None and err.errno == code
    assert as_os_error(SafetensorError("header too large")) is None
    assert as_os_error(ValueError("not a write")) is None


def test_checkpoint_save_on_a_full_disk_is_a_checkpoint_error(small_tmpfs) -> None:
    import leandl
    from leandl.errors import CheckpointError

    where = small_tmpfs("1m")
    model = leandl.create_model("mlp", num_classes=10, input_shape=(1, 8, 8), hidden=(512, 512))
    with pytest.raises(CheckpointError, match="No space left on device"):
        leandl.save(model, where / "ck")  # ~1.1 MB of weights into 1 MiB
    assert not (where / "ck").exists()
