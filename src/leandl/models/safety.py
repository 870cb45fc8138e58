"""What a library model spec may ask for without ``trust=True``.

A checkpoint's ``leandl.json`` is data from wherever the checkpoint came from, and the
``torchvision:``, ``timm:`` and ``hf:`` adapters hand its kwargs to third-party constructors.
Those constructors can download weights, read files or fetch configs from a hub when asked, so
an untrusted spec may only describe an *architecture*: :func:`spec_risks` lists every argument
that could reach a file, a URL, a hub or remote code, and :func:`leandl.checkpoint.load` and
:func:`leandl.models.create_model` refuse the spec unless the caller passes ``trust=True``.

The rules (applied to the model name and to every value, nested dicts and lists included):

- any string that looks like a path or a URL: it contains ``"://"``, ``"/"`` or ``"\\"``, starts
  with ``~`` or a drive letter, carries a hub/file scheme (``hf-hub:``, ``hf_hub:``,
  ``local-dir:``, ``file:``), or ends in a weights/archive suffix (``.pth``, ``.safetensors`` ...);
- torchvision: ``weights`` or ``weights_backbone`` other than ``None``;
- timm: ``pretrained`` true, ``checkpoint_path``, ``pretrained_cfg`` / ``pretrained_cfg_overlay``
  naming a ``url``, ``file``, ``hf_hub_id`` or ``state_dict``;
- Hugging Face configs: ``auto_map``, ``trust_remote_code``, ``use_pretrained_backbone`` true,
  a ``backbone`` checkpoint name (unless it names a timm architecture: ``use_timm_backbone``)
  (``_name_or_path`` is dropped, not refused: building from a config never reads it). Label maps
  (``id2label``, ``label2id``) and ``task_specific_params`` are free text and are not scanned.
  The ``hf:`` adapter checks the config *with its class defaults filled in* as well, so a default
  such as an old ``DetrConfig``'s ``use_pretrained_backbone=True`` is caught too.
"""

from __future__ import annotations

import re
from typing import Any

from leandl.errors import ModelError

__all__ = ["spec_risks", "hf_config_risks", "looks_like_path_or_url", "UntrustedSpecError"]


class UntrustedSpecError(ModelError):
    """A library spec would download, read files or run remote code, and trust was not given."""

_SCHEMES = ("hf-hub:", "hf_hub:", "local-dir:", "file:", "http:", "https:", "s3:", "gs:", "ftp:")
_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".npz", ".npy", ".h5", ".onnx",
             ".json", ".pkl", ".pickle", ".tar", ".gz", ".zip", ".msgpack", ".pb", ".tflite")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
# Free-text fields of Hugging Face configs (class labels, prompt prefixes): never file names.
_HF_FREE_TEXT = frozenset({"id2label", "label2id", "task_specific_params"})
_TIMM_CFG_KEYS = ("url", "file", "hf_hub_id", "hf_hub_filename", "state_dict", "source")


def looks_like_path_or_url(value: str) -> bool:
    """True when ``value`` could name a file, a directory, a URL or a hub repository.

    Args:
        value: any string from a spec.

    Returns:
        Whether handing ``value`` to a library could make it read a file or go online.
    """
    s = value.strip()
    low = s.lower()
    return (
        "://" in s or "/" in s or "\\" in s or s.startswith("~") or bool(_DRIVE.match(s))
        or low.startswith(_SCHEMES) or low.endswith(_SUFFIXES) or s in (".", "..")
    )


def _path_strings(value: Any, where: str, skip: frozenset[str] = frozenset()) -> list[str]:
    """One risk line per path- or URL-like string inside ``value`` (``where`` names its key)."""
    found: list[str] = []
    if isinstance(value, str):
        if looks_like_path_or_url(value):
            found.append(f"'{where}'={value!r} looks like a path or URL")
    elif isinstance(value, dict):
        for k, v in value.items():
            if k in skip:
                continue
            found.extend(_path_strings(v, f"{where}.{k}" if where else str(k), skip))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found.extend(_path_strings(v, f"{where}[{i}]", skip))
    return found


def _torchvision_risks(kwargs: dict[str, Any]) -> list[str]:
    risks = [f"'{key}'={kwargs[key]!r} downloads pretrained weights"
             for key in ("weights", "weights_backbone") if kwargs.get(key) is not None]
    return risks + _path_strings(kwargs, "")


def _timm_risks(kwargs: dict[str, Any]) -> list[str]:
    risks = []
    if kwargs.get("pretrained"):
        risks.append(f"'pretrained'={kwargs['pretrained']!r} downloads pretrained weights")
    if kwargs.get("checkpoint_path"):
        risks.append(f"'checkpoint_path'={kwargs['checkpoint_path']!r} reads a weights file")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay"):
        cfg = kwargs.get(key)
        if isinstance(cfg, dict):
            risks += [f"'{key}.{k}' names a weights source" for k in _TIMM_CFG_KEYS if cfg.get(k)]
    return risks + _path_strings(kwargs, "")


def hf_config_risks(config: Any, where: str = "config") -> list[str]:
    """Risks in a Hugging Face config dict (nested sub-configs included).

    Args:
        config: the config's fields, e.g. ``PretrainedConfig.to_dict()``.
        where: the name to report keys under.

    Returns:
        One readable line per risky field, naming it (empty when safe).
    """
    if not isinstance(config, dict):
        return []
    risks = []
    for key, value in config.items():
        path = f"{where}.{key}"
        if key == "auto_map":
            risks.append(f"'{path}' points at remote code")
        elif key == "trust_remote_code" and value:
            risks.append(f"'{path}'={value!r} asks to run remote code")
        elif key == "use_pretrained_backbone" and value:
            risks.append(f"'{path}'={value!r} downloads backbone weights")
        elif (key == "backbone" and isinstance(value, str) and value and not looks_like_path_or_url(value)
              and not (config.get("use_timm_backbone") or config.get("model_type") == "timm_backbone")):
            risks.append(f"'{path}'={value!r} names a checkpoint transformers would fetch for the backbone")
        elif key in ("_name_or_path", "name_or_path") or key in _HF_FREE_TEXT:
            continue
        elif isinstance(value, dict):
            risks += hf_config_risks(value, path)
        else:
            risks += _path_strings(value, path)
    return risks


def _hf_risks(kwargs: dict[str, Any]) -> list[str]:
    risks = hf_config_risks(kwargs.get("config") or {}, "config")
    others = {k: v for k, v in kwargs.items() if k != "config"}
    return risks + _path_strings(others, "")


def spec_risks(name: str, kwargs: dict[str, Any]) -> list[str]:
    """Every reason a library spec could reach files, the network or remote code.

    Args:
        name: the model name, ``"torchvision:NAME"``, ``"timm:NAME"`` or ``"hf:ClassName"``;
            other names (registry names, import paths) have no library risks and return ``[]``.
        kwargs: the spec's keyword arguments.

    Returns:
        One readable line per risky argument, naming the key (empty when the spec is safe).

    Example:
        >>> spec_risks("timm:resnet18", {"pretrained": True})
        ["'pretrained'=True downloads pretrained weights"]
    """
    prefix, _, arch = name.partition(":")
    checks = {"torchvision": _torchvision_risks, "timm": _timm_risks, "hf": _hf_risks}
    if not arch or prefix not in checks:
        return []
    risks = []
    if looks_like_path_or_url(arch) or ":" in arch:
        risks.append(f"the model name '{arch}' looks like a path, URL or hub name")
    seen: set[str] = set()
    for line in checks[prefix](kwargs):
        key = line.split("'")[1]  # every line starts with the quoted key
        if key not in seen:
            seen.add(key)
            risks.append(line)
    return risks
