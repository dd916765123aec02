"""Tiny random wav2vec2 in the two layouts users have on disk: a Hugging Face folder and one .safetensors file.

Both hold the fixture's tiny config (``tests/fixtures/wav2vec_tiny.json``) so host tests run in seconds. The
folder layout follows ``facebook/wav2vec2-base-960h``: a ``Wav2Vec2ForCTC`` state dict (``wav2vec2.`` prefix,
``lm_head``) with the hub's ``weight_g`` / ``weight_v`` weight-norm names.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Wav2Vec2Config

from singer_core.audio.wav2vec import build_wav2vec

FIXTURE_CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "wav2vec_tiny.json"
_PARAMETRIZED = "encoder.pos_conv_embed.conv.parametrizations.weight.original"


def tiny_wav2vec_config() -> Wav2Vec2Config:
    return Wav2Vec2Config.from_dict(json.loads(FIXTURE_CONFIG.read_text())["config"])


def tiny_wav2vec_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict (parametrized weight-norm names, no prefix) of a tiny random model."""
    torch.manual_seed(seed)
    model = build_wav2vec(tiny_wav2vec_config())
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _hub_layout(state_dict: dict[str, torch.Tensor], vocab_size: int) -> dict[str, torch.Tensor]:
    """Rename like a hub Wav2Vec2ForCTC checkpoint: prefix, weight_g/weight_v, plus a CTC head."""
    out = {}
    for key, tensor in state_dict.items():
        key = key.replace(_PARAMETRIZED + "0", "encoder.pos_conv_embed.conv.weight_g")
        key = key.replace(_PARAMETRIZED + "1", "encoder.pos_conv_embed.conv.weight_v")
        out["wav2vec2." + key] = tensor
    hidden = state_dict["feature_projection.projection.weight"].shape[0]
    out["lm_head.weight"] = torch.randn(vocab_size, hidden) * 0.02
    out["lm_head.bias"] = torch.zeros(vocab_size)
    return out


def write_tiny_wav2vec_folder(folder: str | Path, seed: int = 0, weights_name: str = "model.safetensors") -> Path:
    """HF folder (config.json + model.safetensors or pytorch_model.bin) in the hub's Wav2Vec2ForCTC layout."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_wav2vec_config()
    config_dict = config.to_dict()
    config_dict["architectures"] = ["Wav2Vec2ForCTC"]
    (folder / "config.json").write_text(json.dumps(config_dict, indent=2))
    tensors = _hub_layout(tiny_wav2vec_state_dict(seed), config.vocab_size)
    if weights_name.endswith(".safetensors"):
        save_file(tensors, str(folder / weights_name), metadata={"format": "pt"})
    else:
        torch.save(tensors, folder / weights_name)
    return folder


def write_tiny_wav2vec_file(path: str | Path, seed: int = 0, with_config: bool = True) -> Path:
    """Single ``.safetensors`` (our key names); the config goes in the metadata unless ``with_config=False``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt"}
    if with_config:
        metadata["config"] = tiny_wav2vec_config().to_json_string()
    save_file(tiny_wav2vec_state_dict(seed), str(path), metadata=metadata)
    return path
