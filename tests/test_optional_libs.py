"""torchvision, timm and transformers (the ``vision`` and ``nlp`` extras, pulled in by ``test``)
import and run a forward pass beside the installed torch, on the CPU.

torchvision is imported through :func:`leandl._compat_torchvision.import_torchvision`, which lets
PyPI's (CUDA) torchvision wheel import beside a CPU torch; timm and transformers import
torchvision themselves, so they come after it. tests/conftest.py applies the shim to the test
process, so one test checks it in a fresh process, then builds leandl's ``torchvision:`` and
``timm:`` adapter models there.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from leandl._compat_torchvision import import_torchvision, shim_applied


@pytest.fixture(scope="module")
def tv():
    return import_torchvision()


def test_torchvision_models_run(tv) -> None:
    model = tv.models.resnet18(num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    small = tv.models.get_model("mobilenet_v3_small", weights=None, num_classes=4).eval()
    with torch.no_grad():
        assert small(torch.randn(2, 3, 64, 64)).shape == (2, 4)
    assert import_torchvision() is tv


def test_torchvision_transforms_run(tv) -> None:
    from torchvision.transforms import v2

    out = v2.Compose([v2.Resize(16, antialias=True), v2.Normalize([0.5] * 3, [0.5] * 3)])(torch.rand(3, 32, 32))
    assert out.shape == (3, 16, 16)


def test_torchvision_ops_say_why_when_shimmed(tv) -> None:
    if not shim_applied():
        pytest.skip("torchvision's C++ ops loaded here; the shim was not needed")
    assert not tv.extension._has_ops()
    with pytest.raises(RuntimeError, match="Couldn't load custom C\\+\\+ ops"):
        tv.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)


def test_timm_model_runs(tv) -> None:
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=10, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=32,
                            patch_size=8).eval()
    with torch.no_grad():
        assert vit(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_transformers_models_run(tv) -> None:
    import transformers

    bert_cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64, num_labels=3)
    bert = transformers.BertForSequenceClassification(bert_cfg).eval()
    vit_cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, num_labels=4)
    vit = transformers.ViTForImageClassification(vit_cfg).eval()
    with torch.no_grad():
        assert bert(input_ids=torch.randint(0, 100, (2, 8))).logits.shape == (2, 3)
        assert vit(pixel_values=torch.randn(2, 3, 32, 32)).logits.shape == (2, 4)


def test_fresh_process_imports_and_leandl_adapters() -> None:
    # conftest has already imported torchvision in this process; check the shim from scratch.
    code = textwrap.dedent("""
        import torch
        from leandl._compat_torchvision import import_torchvision
        import_torchvision()
        import timm, transformers
        from leandl.models import create_model
        tv = create_model("torchvision:resnet18", num_classes=7, input_shape=(3, 32, 32)).eval()
        tm = create_model("timm:resnet18", num_classes=7, input_shape=(1, 32, 32)).eval()
        with torch.no_grad():
            assert tv(torch.randn(1, 3, 32, 32)).shape == (1, 7)
            assert tm(torch.randn(1, 1, 32, 32)).shape == (1, 7)
        import torchvision
        print(torch.__version__, torchvision.__version__, timm.__version__, transformers.__version__)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
