from __future__ import annotations

import pytest

from leandl.errors import UsageError
from leandl.registry import MODELS, STAGES, TECHNIQUES, Registry


def test_close_match_suggestion():
    with pytest.raises(UsageError, match="did you mean 'label_smoothing'"):
        TECHNIQUES.get("label_smothing")
    with pytest.raises(UsageError, match="did you mean 'resnet56'"):
        MODELS.get("resnet65")


def test_register_and_describe():
    reg: Registry = Registry("thing")

    @reg.register("alpha")
    class Alpha:
        """First line.

        More."""

    assert reg.names() == ["alpha"] and reg.describe("alpha") == "First line."
    with pytest.raises(ValueError, match="twice"):
        reg.register("alpha", object())


def test_providers_fill_registries():
    assert "train" in STAGES.names() and "swa" in TECHNIQUES.names() and "digits_cnn" in MODELS.names()
