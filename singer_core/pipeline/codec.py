"""The image <-> latent codec the pipeline talks to, injected so hosts can bring their own VAE."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from singer_core.errors import InputError
from singer_core.sampling import LATENT_SCALE


@runtime_checkable
class VideoCodec(Protocol):
    """Encode/decode image batches. ``downscale`` is the pixel/latent size ratio (8 for SD VAEs)."""

    downscale: int

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` [N, 3, H, W] in [-1, 1] -> scaled latents [N, 4, H/d, W/d] (float32, any device)."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [N, 4, h, w] -> images [N, 3, h*d, w*d] in [0, 1] (float32, any device)."""


class DiffusersVAECodec:
    """A ``diffusers.AutoencoderKL`` used exactly as the official pipeline uses it.

    Encoding (a few frames per clip, one call) takes ``latent_dist.mean`` × 0.18215; decoding runs
    ``batch_size`` frames at a time (1 = the official per-frame decode, which also bounds the peak memory) and maps
    ``(x / 2 + 0.5).clamp(0, 1)``. ``tiling`` turns on diffusers' tiled VAE for large frames.
    """

    def __init__(self, vae, batch_size: int = 1, tiling: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(
                f"decode batch_size must be a whole number >= 1 (got {batch_size!r}); 1 decodes one frame at a time "
                "and needs the least memory."
            )
        self.vae = vae.eval()
        self.batch_size = batch_size
        self.downscale = 2 ** (len(vae.config.block_out_channels) - 1)
        if tiling:
            vae.enable_tiling()
        else:
            vae.disable_tiling()

    @property
    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        param = next(self.vae.parameters())
        return param.device, param.dtype

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        device, dtype = self._device_dtype
        return self.vae.encode(images.to(device, dtype)).latent_dist.mean.float() * LATENT_SCALE

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        device, dtype = self._device_dtype
        chunks = [
            (self.vae.decode((1 / LATENT_SCALE) * batch.to(device, dtype)).sample.float() / 2 + 0.5).clamp(0, 1)
            for batch in latents.split(self.batch_size)
        ]
        return torch.cat(chunks)


class FunctionCodec:
    """A codec from two callables, for hosts with their own VAE object (e.g. ComfyUI's ``VAE``, whose
    ``encode`` takes ``[N, H, W, 3]`` in [0, 1] and returns unscaled latents: the host wraps it to this
    protocol's layouts and scaling)."""

    def __init__(self, encode, decode, downscale: int = 8) -> None:
        self._encode, self._decode, self.downscale = encode, decode, downscale

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self._encode(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self._decode(latents)
