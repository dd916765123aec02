"""ComfyUI's ``VAE`` object as the pipeline's :class:`~singer_core.pipeline.codec.VideoCodec`.

ComfyUI's VAE works on IMAGE tensors ``[N, H, W, 3]`` in [0, 1] and returns *raw* latents (for
sd-vae-ft-mse: ``AutoencoderKL`` with ComfyUI's ``DiagonalGaussianRegularizer(sample=False)``, i.e. the
posterior **mean**, as the official pipeline's ``latent_dist.mean``). The pipeline works in model space,
raw × 0.18215 (the factor the official code hard-codes), with images in [-1, 1] for encoding.
"""

from __future__ import annotations

import torch

from singer_core.pipeline.codec import LATENT_SCALE


class ComfyVAECodec:
    """Encode/decode through a ComfyUI ``VAE``; ComfyUI loads it onto its VAE device and batches by free memory."""

    def __init__(self, vae) -> None:
        self.vae = vae
        self.downscale = int(vae.spacial_compression_encode())

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` in [-1, 1] -> model-space latents ``[N, 4, H/8, W/8]`` (float32)."""
        pixels = ((images.float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0).movedim(1, -1)
        return self.vae.encode(pixels).float() * LATENT_SCALE

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Model-space latents ``[N, 4, h, w]`` -> images ``[N, 3, 8h, 8w]`` in [0, 1] (float32)."""
        return self.vae.decode(latents.float() / LATENT_SCALE).float().movedim(-1, 1)


def to_comfy_latent(model_latents: torch.Tensor) -> dict:
    """The pipeline's model-space latents -> a ComfyUI ``LATENT`` (raw VAE space, what ``VAEDecode`` expects)."""
    return {"samples": model_latents.float().cpu() / LATENT_SCALE}
