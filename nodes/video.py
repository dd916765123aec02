"""Latents -> video frames with ComfyUI's VAE, a few frames at a time."""

from __future__ import annotations

import comfy.utils
import torch
from comfy_api.latest import io

from singer_core.errors import InputError

from .devices import check_interrupted

TILE_OVERLAP_FRACTION = 4  # overlap = tile / 4, ComfyUI's own default ratio


class SingerVideoDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerVideoDecode",
            display_name="SINGER Video Decode",
            category="SINGER/video",
            description="Decodes the sampler's latents [T, 4, H/8, W/8] into T frames, batch_size frames at a time "
            "so the GPU memory stays bounded for songs of any length; tiling bounds it for large frames too.",
            inputs=[
                io.Vae.Input("vae", tooltip="The same VAE as used for the reference (sd-vae-ft-mse)."),
                io.Latent.Input("latent", tooltip="Video latents from 'SINGER Sampler' (one entry per frame)."),
                io.Int.Input("batch_size", default=8, min=1, max=256,
                             tooltip="Frames decoded at once; lower it if the GPU runs out of memory."),
                io.Boolean.Input("tiled", default=False,
                                 tooltip="Decode each frame in overlapping tiles (for large frames on small GPUs)."),
                io.Int.Input("tile_size", default=512, min=128, max=4096, step=64,
                             tooltip="Tile edge in pixels when 'tiled' is on (tiles overlap by a quarter)."),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def execute(cls, vae, latent: dict, batch_size: int = 8, tiled: bool = False, tile_size: int = 512):
        samples = latent["samples"]
        if samples.dim() != 4:
            raise InputError(
                f"latent 'samples' must be [frames, channels, height, width] (got shape {list(samples.shape)}); "
                "connect the SINGER Sampler's latent."
            )
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1 (got {batch_size}).")
        batches = samples.split(batch_size)
        bar = comfy.utils.ProgressBar(len(batches))
        frames = []
        for batch in batches:
            check_interrupted()
            frames.append(_decode(vae, batch, tiled, tile_size).cpu())
            bar.update(1)
        return io.NodeOutput(torch.cat(frames))


def _decode(vae, latents: torch.Tensor, tiled: bool, tile_size: int) -> torch.Tensor:
    if not tiled:
        return vae.decode(latents)
    tile = max(8, tile_size // vae.spacial_compression_decode())
    return vae.decode_tiled(latents, tile_x=tile, tile_y=tile, overlap=tile // TILE_OVERLAP_FRACTION)
