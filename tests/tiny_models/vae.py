"""Writes the fixtures' tiny ``AutoencoderKL`` in the formats a models folder may hold."""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def tiny_vae() -> AutoencoderKL:
    """The fixture VAE (``vae_tiny.json`` + weights), eval mode."""
    spec = json.loads((FIXTURES / "vae_tiny.json").read_text())
    vae = AutoencoderKL(**spec["constructor_kwargs"])
    vae.load_state_dict(load_file(str(FIXTURES / "vae_tiny.weights.safetensors")), strict=True)
    return vae.eval()


def write_diffusers_folder(folder: str | Path) -> Path:
    """``folder/config.json`` + ``diffusion_pytorch_model.safetensors`` (``AutoencoderKL.from_pretrained`` layout)."""
    folder = Path(folder)
    tiny_vae().save_pretrained(str(folder), safe_serialization=True)
    return folder


def write_single_file(path: str | Path) -> Path:
    """One safetensors file with diffusers key names and the config in its metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vae = tiny_vae()
    config = {k: v for k, v in vae.config.items() if not k.startswith("_")}
    save_file(vae.state_dict(), str(path), metadata={"config": json.dumps(config)})
    return path
