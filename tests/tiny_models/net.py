"""Tiny SINGER / Hallo net checkpoints in the real file formats (the fixture weights of ``net_tiny``)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from singer_core.checkpoint import CONFIG_METADATA_KEY, KIND_METADATA_KEY, SINGER_PREFIXES, config_for_kind
from singer_core.config import NetConfig

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NET_CONFIG_FILE = FIXTURES / "net_tiny.json"


def tiny_net_config(kind: str = "singer") -> NetConfig:
    """Architecture of the tiny fixture net (``hallo``: the same without MSM/SFM)."""
    return config_for_kind(NetConfig.from_file(NET_CONFIG_FILE), kind)


def tiny_net_state_dict(kind: str = "singer") -> dict[str, torch.Tensor]:
    """The official tiny net's weights; for Hallo the six MSM/SFM keys are dropped."""
    state_dict = load_file(str(FIXTURES / "net_tiny.weights.safetensors"))
    if kind == "hallo":
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(SINGER_PREFIXES)}
    return state_dict


def write_tiny_singer_checkpoint(path: str | Path, kind: str = "singer", fmt: str = "safetensors") -> Path:
    """Write a tiny net as ``net.pth`` (plain state_dict, like the official file) or our ``.safetensors``.

    The ``.safetensors`` carries the tiny architecture in its metadata; a ``.pth`` has none,
    so loading one needs ``config=tiny_net_config(kind)`` (or ``--config tests/fixtures/net_tiny.json``).
    """
    if kind not in ("singer", "hallo") or fmt not in ("safetensors", "pth"):
        raise ValueError(f"kind must be singer|hallo and fmt safetensors|pth, got {kind!r}, {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state_dict = tiny_net_state_dict(kind)
    if fmt == "pth":
        torch.save(state_dict, path)
    else:
        metadata = {"format": "pt", KIND_METADATA_KEY: kind, CONFIG_METADATA_KEY: tiny_net_config(kind).to_json()}
        save_file(state_dict, str(path), metadata=metadata)
    return path
