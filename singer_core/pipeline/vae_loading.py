"""Loading the SD VAE for the library/CLI from a diffusers folder or a single safetensors file."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from safetensors import safe_open
from safetensors.torch import load_file

from singer_core.errors import CheckpointError, ModelFileMissingError

# stabilityai/sd-vae-ft-mse config.json (the VAE SINGER was trained with).
SD_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 256,
    "scaling_factor": 0.18215,
}


def load_vae(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """``AutoencoderKL`` from a diffusers folder (``config.json`` + weights) or one ``.safetensors`` file
    (diffusers key names, or the original/ComfyUI "LDM" key names). Eval mode, no gradients."""
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelFileMissingError(f"VAE folder {path} has no config.json (expected a diffusers AutoencoderKL).")
        vae = AutoencoderKL.from_pretrained(
            str(path), local_files_only=True, low_cpu_mem_usage=False, torch_dtype=dtype
        )
    elif path.is_file() and path.suffix == ".safetensors":
        vae = _from_single_file(path).to(dtype=dtype)
    elif path.is_file():
        raise CheckpointError(f"{path}: a single-file VAE must be a .safetensors file.")
    else:
        raise ModelFileMissingError(f"VAE not found at {path}.")
    vae.requires_grad_(False)
    return vae.eval().to(device=device)


def _from_single_file(path: Path) -> AutoencoderKL:
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    config = json.loads(metadata["config"]) if "config" in metadata else dict(SD_VAE_CONFIG)
    state_dict = load_file(str(path))
    if any(key.startswith(("encoder.down.", "first_stage_model.")) for key in state_dict):
        from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

        state_dict = convert_ldm_vae_checkpoint(state_dict, config)
    vae = AutoencoderKL(**config)
    try:
        missing, unexpected = vae.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise CheckpointError(f"{path.name} does not fit the SD VAE architecture (sd-vae-ft-mse): {error}") from error
    if missing or unexpected:
        raise CheckpointError(
            f"{path.name} is not an SD VAE: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})."
        )
    return vae
