"""VAE files that ComfyUI's core ``VAELoader`` node accepts, with random weights.

``VAELoader`` does not read a config: it recognises an SD ``AutoencoderKL`` by its key names and
always builds the full sd-vae-ft-mse architecture (128/256/512/512 channels, 2 resnets per level), so a
smaller AutoencoderKL (e.g. the fixtures' 16-channel ``vae_tiny``) fails on tensor shapes. Two files:

* ``write_sd_vae``: the full sd-vae-ft-mse architecture (83.7 M parameters, fp16 on disk, 167 MB) in the
  diffusers key layout of the published ``diffusion_pytorch_model.safetensors``, which ComfyUI converts.
  Real but slow on the CPU (about 1 s per 64x64 frame on two cores).
* ``write_taesd``: TAESD's encoder/decoder pair (``vae_approx/taesd_{encoder,decoder}.safetensors``),
  offered by ``VAELoader`` as ``taesd``. ComfyUI's TAESD works in the same raw SD latent space (it
  scales by 0.18215 inside), has the same 8x downscale and 4 channels, and decodes a 64x64 frame in
  milliseconds: the host tests' end-to-end runs use it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

SD_VAE_CONFIG = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 512,
}
TAESD_WIDTH = 64


def write_sd_vae(path: str | Path, seed: int = 0) -> Path:
    """Random sd-vae-ft-mse-shaped ``AutoencoderKL`` as one diffusers-layout safetensors file (fp16)."""
    from diffusers import AutoencoderKL

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vae = AutoencoderKL(**SD_VAE_CONFIG)
    save_file({k: v.half().contiguous() for k, v in vae.state_dict().items()}, str(path))
    return path


def _conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class _Block(nn.Module):
    """TAESD's residual block (same parameter names: ``conv.0``, ``conv.2``, ``conv.4``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(width, width), nn.ReLU(), _conv(width, width), nn.ReLU(), _conv(width, width))


def _taesd_encoder(width: int = TAESD_WIDTH, latent_channels: int = 4) -> nn.Sequential:
    def stage() -> list[nn.Module]:
        return [_conv(width, width, stride=2, bias=False), _Block(width), _Block(width), _Block(width)]

    return nn.Sequential(_conv(3, width), _Block(width), *stage(), *stage(), *stage(), _conv(width, latent_channels))


def _taesd_decoder(width: int = TAESD_WIDTH, latent_channels: int = 4) -> nn.Sequential:
    def stage() -> list[nn.Module]:
        blocks = [_Block(width), _Block(width), _Block(width)]
        return [*blocks, nn.Upsample(scale_factor=2), _conv(width, width, bias=False)]

    clamp = nn.Identity()  # TAESD's parameter-free Clamp
    return nn.Sequential(
        clamp, _conv(latent_channels, width), nn.ReLU(), *stage(), *stage(), *stage(), _Block(width), _conv(width, 3)
    )


def write_taesd(vae_approx_dir: str | Path, seed: int = 0) -> Path:
    """``taesd_encoder.safetensors`` + ``taesd_decoder.safetensors`` with random weights; returns the folder."""
    folder = Path(vae_approx_dir)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    for name, module in (("taesd_encoder", _taesd_encoder()), ("taesd_decoder", _taesd_decoder())):
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / f"{name}.safetensors"))
    return folder
