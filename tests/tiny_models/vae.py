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


def _ldm_key(key: str, levels: int) -> str:
    """diffusers AutoencoderKL key -> original (LDM / ComfyUI single-file) key."""
    parts = key.split(".")
    if parts[1] in ("down_blocks", "up_blocks"):
        side, kind, i = parts[0], parts[1], int(parts[2])
        index = i if kind == "down_blocks" else levels - 1 - i
        stem = f"{side}.{'down' if kind == 'down_blocks' else 'up'}.{index}"
        if parts[3] == "resnets":
            rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
            return f"{stem}.block.{parts[4]}.{rest}"
        sampler = "downsample" if kind == "down_blocks" else "upsample"
        return f"{stem}.{sampler}.{'.'.join(parts[5:])}"
    if parts[1] == "mid_block":
        if parts[2] == "resnets":
            return f"{parts[0]}.mid.block_{int(parts[3]) + 1}.{'.'.join(parts[4:])}"
        names = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}
        tail = parts[-1]
        return f"{parts[0]}.mid.attn_1.{names[parts[4]]}.{tail}"
    return key.replace("conv_norm_out", "norm_out")


def write_ldm_single_file(path: str | Path, with_config: bool = True) -> Path:
    """One safetensors file with the original LDM key names (how ComfyUI's models/vae files look),
    attention projections stored as 1x1 convolutions. Real files carry no config (the loader then
    assumes sd-vae-ft-mse); ``with_config`` stores the tiny config in the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vae = tiny_vae()
    levels = len(vae.config.block_out_channels)
    out = {}
    for key, tensor in vae.state_dict().items():
        name = _ldm_key(key, levels)
        if ".mid.attn_1." in name and name.endswith(".weight") and tensor.dim() == 2:
            tensor = tensor[:, :, None, None]
        out[name] = tensor.contiguous()
    config = {k: v for k, v in vae.config.items() if not k.startswith("_")}
    save_file(out, str(path), metadata={"config": json.dumps(config)} if with_config else None)
    return path
