"""torchao-x86 backend: reused modules (one ReLU called twice per block) no longer break the quantizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.fx.passes.utils.source_matcher_utils import get_source_partitions

from leandl.deploy.backend_torchao import split_reused_module_partitions


class SharedReluBlock(nn.Module):
    """conv-relu-conv-add-relu with ONE ReLU module, as torchvision's BasicBlock writes it."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x))) + x)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(SharedReluBlock(), SharedReluBlock())
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def _relu_outputs(gm: torch.fx.GraphModule) -> list[int]:
    parts = get_source_partitions(gm.graph, [nn.ReLU])
    return sorted(len(p.output_nodes) for ps in parts.values() for p in ps)


def test_split_gives_each_call_of_a_shared_relu_its_own_partition() -> None:
    gm = torch.export.export(Net().eval(), (torch.randn(2, 3, 8, 8),)).module()
    assert _relu_outputs(gm) == [2, 2]  # the bug: one partition per block, two outputs each
    code_before = gm.code
    assert split_reused_module_partitions(gm) == 2
    assert _relu_outputs(gm) == [1, 1, 1, 1]
    assert gm.code == code_before  # metadata only
    # connected multi-node partitions (a conv's own nodes) are left whole; a second call is a no-op
    assert split_reused_module_partitions(gm) == 0


def test_split_leaves_connected_pieces_of_one_module_together() -> None:
    class TwoOps(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x) * 2

    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = TwoOps()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) + 1

    gm = torch.export.export(Outer(), (torch.randn(2, 3),)).module()
    assert split_reused_module_partitions(gm) == 0
    parts = get_source_partitions(gm.graph, [TwoOps])
    assert [len(p.nodes) for ps in parts.values() for p in ps] == [2]


def test_torchao_x86_builds_a_model_with_a_shared_relu(tmp_path: Path) -> None:
    pytest.importorskip("torchao")
    from leandl.registry import BACKENDS

    torch.manual_seed(0)
    model = Net().eval()
    g = torch.Generator().manual_seed(1)
    cal = [torch.randn(8, 3, 8, 8, generator=g) for _ in range(4)]
    built = BACKENDS.get("torchao-x86")().build(model, cal[0], cal, tmp_path)
    run = built.runner(1)
    x = torch.randn(16, 3, 8, 8, generator=g)
    with torch.no_grad():
        ref, got = model(x), run(x)
    assert got.shape == ref.shape
    cos = torch.nn.functional.cosine_similarity(ref.flatten(), got.flatten(), dim=0)
    assert cos > 0.99
    assert built.size_bytes < sum(p.numel() * 4 for p in model.parameters())  # int8 weights


def test_torchao_x86_takes_keyword_token_ids_and_dict_outputs(tmp_path: Path) -> None:
    """A transformers-style call (input_ids + attention_mask keywords, a dict out) builds and
    runs through the export adapter; the runner takes the same keyword call."""
    pytest.importorskip("torchao")
    from leandl.deploy import compare_outputs
    from leandl.registry import BACKENDS

    class TokenNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.fc = nn.Linear(16, 16)
            self.head = nn.Linear(16, 3)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
            h = torch.relu(self.fc(self.emb(input_ids))) * attention_mask.unsqueeze(-1)
            return {"last_hidden_state": h, "logits": self.head(h.mean(1))}

    torch.manual_seed(0)
    model = TokenNet().eval()
    g = torch.Generator().manual_seed(1)

    def batch(n: int) -> dict[str, torch.Tensor]:
        ids = torch.randint(0, 50, (n, 6), generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    built = BACKENDS.get("torchao-x86")().build(model, batch(1), [batch(4) for _ in range(3)], tmp_path)
    run = built.runner(1)
    x = batch(8)
    with torch.no_grad():
        ref = model(**x)
        got = run(**x)
    assert isinstance(got, tuple) and len(got) == 2
    c = compare_outputs(ref, got)
    assert c.outputs["last_hidden_state"]["cosine"] > 0.99 and c.outputs["logits"]["cosine"] > 0.99
    with torch.no_grad():  # the dict form of the call gives the same result
        torch.testing.assert_close(run(x)[1], got[1])


def test_torchao_x86_runs_a_model_that_views_a_conv_output(tmp_path: Path) -> None:
    """``x.view(n, -1)`` of a conv output (AlexNet, MobileViT) failed after lowering: oneDNN's
    int8 convs return channels-last tensors that a view cannot flatten; views become reshapes."""
    pytest.importorskip("torchao")
    from leandl.deploy.backend_torchao import views_to_reshapes
    from leandl.registry import BACKENDS

    class ViewNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1)
            self.fc = nn.Linear(16 * 8 * 8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.conv(x))
            return self.fc(y.view(y.shape[0], -1))

    torch.manual_seed(0)
    model = ViewNet().eval()
    g = torch.Generator().manual_seed(1)
    cal = [torch.randn(4, 3, 8, 8, generator=g) for _ in range(3)]
    run = BACKENDS.get("torchao-x86")().build(model, cal[0], cal, tmp_path).runner(1)
    x = torch.randn(6, 3, 8, 8, generator=g)
    with torch.no_grad():
        ref, got = model(x), run(x)
    assert torch.nn.functional.cosine_similarity(ref.flatten(), got.flatten(), dim=0) > 0.99

    gm = torch.export.export(model, (x,)).module()
    assert views_to_reshapes(gm) >= 1
    assert "aten.view.default" not in gm.code and "aten.reshape.default" in gm.code
    torch.testing.assert_close(gm(x), model(x))
