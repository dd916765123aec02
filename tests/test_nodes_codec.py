"""The ComfyUI VAE adapter's layouts and scaling, and the workflow files, without a server."""

from __future__ import annotations

from pathlib import Path

import torch

from nodes.comfy_codec import ComfyVAECodec, to_comfy_latent
from singer_core.pipeline import LATENT_SCALE, VideoCodec

REPO = Path(__file__).resolve().parents[1]


class RecordingVAE:
    """ComfyUI's VAE interface: encode([N, H, W, 3] in [0, 1]) -> raw latents; decode(raw) -> [N, H, W, 3]."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def spacial_compression_encode(self) -> int:
        return 8

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        self.seen.append(pixels)
        return pixels.movedim(-1, 1)[:, :, ::8, ::8].mean(1, keepdim=True).expand(-1, 4, -1, -1) + 1.0

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        self.seen.append(raw)
        return raw[:, :3].repeat_interleave(8, -1).repeat_interleave(8, -2).movedim(1, -1)


def test_encode_takes_images_in_minus_one_one_and_scales_the_raw_latents():
    vae = RecordingVAE()
    codec = ComfyVAECodec(vae)
    assert isinstance(codec, VideoCodec) and codec.downscale == 8
    images = torch.linspace(-1, 1, 2 * 3 * 16 * 16).reshape(2, 3, 16, 16)
    latents = codec.encode(images)
    (pixels,) = vae.seen
    assert pixels.shape == (2, 16, 16, 3)
    torch.testing.assert_close(pixels, ((images + 1) / 2).movedim(1, -1))
    raw = vae.encode(pixels)
    torch.testing.assert_close(latents, raw * LATENT_SCALE)


def test_decode_unscales_and_returns_channels_first():
    vae = RecordingVAE()
    latents = torch.randn(3, 4, 2, 2)
    images = ComfyVAECodec(vae).decode(latents)
    torch.testing.assert_close(vae.seen[0], latents / LATENT_SCALE)
    assert images.shape == (3, 3, 16, 16)
    torch.testing.assert_close(images[:, :, ::8, ::8], latents[:, :3] / LATENT_SCALE)


def test_sampler_latents_become_raw_vae_latents():
    model_space = torch.randn(5, 4, 8, 8, dtype=torch.float16)
    latent = to_comfy_latent(model_space)
    assert latent["samples"].dtype == torch.float32 and latent["samples"].shape == (5, 4, 8, 8)
    torch.testing.assert_close(latent["samples"], model_space.float() / LATENT_SCALE)


def test_template_browser_copy_is_identical_to_the_shipped_workflow():
    shipped = (REPO / "workflows" / "singer.json").read_bytes()
    assert (REPO / "example_workflows" / "singer.json").read_bytes() == shipped
