"""leandl's model zoo: a registry of reference models and one factory for every model source.

``create_model(name, **kwargs)`` builds a registry model (``resnet20``, ``digits_cnn``,
``vit_tiny`` ...), a torchvision or timm model (``"torchvision:resnet18"``, ``"timm:resnet18"``)
or a user factory (``"package.module:function"``) and records its spec for checkpoints.
Every reference model shares one surface (``forward_features``, ``forward_head``,
``get_classifier``, ``exit_points``, ``feature_layout``); see ``leandl.models._common``.
"""

from __future__ import annotations

from leandl.models.factory import create_model, default_input_shape, is_registry_name, list_models

__all__ = ["create_model", "list_models", "is_registry_name", "default_input_shape"]
