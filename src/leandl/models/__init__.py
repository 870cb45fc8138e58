"""leandl's model zoo: a registry of reference models and one factory for every model source.

``create_model(name, **kwargs)`` builds a registry model (``resnet20``, ``digits_cnn``,
``vit_tiny`` ...), a torchvision, timm or Hugging Face model (``"torchvision:resnet18"``,
``"timm:resnet18"``, ``"hf:BertModel"`` with ``config={...}``) or a user factory
(``"package.module:function"``) and records its spec for checkpoints. Models built elsewhere get
a spec from :func:`derive_spec` (``leandl.save`` calls it) or :func:`from_hf`.
Every reference model shares one surface (``forward_features``, ``forward_head``,
``get_classifier``, ``exit_points``, ``feature_layout``); see ``leandl.models._common``.
"""

from __future__ import annotations

from leandl.models.derive import derive_spec
from leandl.models.factory import create_model, default_input_shape, is_registry_name, list_models
from leandl.models.hf import from_hf
from leandl.models.safety import spec_risks

__all__ = ["create_model", "list_models", "is_registry_name", "default_input_shape", "derive_spec",
           "from_hf", "spec_risks"]
