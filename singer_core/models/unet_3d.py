"""Denoising UNet (official ``UNet3DConditionModel`` of ``unet_3d_revised.py``, key for key).

Frames are folded into the batch for the whole network (``[(b f), C, h, w]``): every
official "inflated" layer is per frame, and only the motion modules look across frames.
The batch is the CFG pair ``[uncond, cond]`` (or the conditional half alone without CFG).
"""

from __future__ import annotations

import math

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from singer_core.config import SfmConfig
from singer_core.errors import InputError
from singer_core.models.conditions import DenoiseConditions, FrameConditions
from singer_core.models.sfm import SpectralFilterModule
from singer_core.models.unet_3d_blocks import DenoiseDownBlock, DenoiseMidBlock, DenoiseUpBlock
from singer_core.models.unet_spec import TemporalSpec, UNetSpec


class DenoisingUNet3D(nn.Module):
    def __init__(self, spec: UNetSpec, tspec: TemporalSpec, spectral_filter: bool) -> None:
        super().__init__()
        self.spec = spec
        channels = spec.block_out_channels
        self.conv_in = nn.Conv2d(spec.in_channels, channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(channels[0], spec.flip_sin_to_cos, spec.freq_shift)
        self.time_embedding = TimestepEmbedding(channels[0], spec.time_embed_dim)
        self.down_blocks = nn.ModuleList(
            [DenoiseDownBlock(spec, tspec, i, channels[max(i - 1, 0)], channels[i]) for i in range(spec.depth)]
        )
        self.mid_block = DenoiseMidBlock(spec, tspec)
        if spectral_filter:
            self.hidden_spectral_weighting = SpectralFilterModule(SfmConfig.for_unet(channels, spec.heads))
        else:
            self.hidden_spectral_weighting = None
        self.up_blocks = nn.ModuleList([DenoiseUpBlock(spec, tspec, i) for i in range(spec.depth)])
        self.conv_norm_out = nn.GroupNorm(spec.norm_num_groups, channels[0], eps=spec.norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(channels[0], spec.out_channels, kernel_size=3, padding=1)

    def time_embed(self, timestep: torch.Tensor | int, batch: int, frames: int, like: torch.Tensor) -> torch.Tensor:
        """Time embedding ``[(b f), D]`` (one row per frame; the official one broadcasts over frames)."""
        t = torch.as_tensor(timestep, device=like.device).reshape(-1).expand(batch)
        emb = self.time_embedding(self.time_proj(t).to(like.dtype))
        return emb.repeat_interleave(frames, dim=0)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, cond: DenoiseConditions) -> torch.Tensor:
        """``sample [2, C, f, h, w]`` (CFG pair [uncond, cond]; ``[1, ...]`` without CFG) -> prediction."""
        self._check_inputs(sample, cond)
        batch, _, frames, height, width = sample.shape
        fc = FrameConditions.build(cond, frames, self.spec.depth, sample.dtype)
        temb = self.time_embed(timestep, batch, frames, sample)
        x = self.conv_in(sample.transpose(1, 2).reshape(batch * frames, -1, height, width))
        x = self._add_face_features(x, cond.face_features, batch, frames)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, fc)
            skips.extend(block_skips)
        x = self.mid_block(x, temb, fc)
        if self.hidden_spectral_weighting is not None:
            x = self._spectral_filter(x, batch, frames)
        for i, block in enumerate(self.up_blocks):
            block_skips = [skips.pop() for _ in block.resnets][::-1]
            upsample_size = skips[-1].shape[-2:] if i < len(self.up_blocks) - 1 else None
            x = block(x, block_skips, temb, fc, upsample_size)
        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return x.unflatten(0, (batch, frames)).transpose(1, 2)

    def _check_inputs(self, sample: torch.Tensor, cond: DenoiseConditions) -> None:
        """Shape errors named after the input at fault, instead of a failure deep inside a block."""
        channels = self.spec.in_channels
        if sample.dim() != 5 or sample.shape[1] != channels:
            raise InputError(f"Latents must be [batch, {channels}, frames, height, width], got {tuple(sample.shape)}.")
        batch, _, frames, height, width = sample.shape
        halves = cond.image_tokens.shape[0]
        if batch != halves or cond.bank.halves != halves:
            raise InputError(
                f"Latent batch {batch}, image tokens {halves} and reference bank {cond.bank.halves} halves must agree "
                "(2 with classifier-free guidance, 1 without)."
            )
        if tuple(cond.audio_tokens.shape[:2]) != (halves, frames):
            raise InputError(
                f"Audio tokens must be [{halves}, {frames}, tokens, dim] for this clip, "
                f"got {tuple(cond.audio_tokens.shape)}."
            )
        for name, levels in (("full", cond.masks.full), ("face", cond.masks.face), ("lip", cond.masks.lip)):
            for i, mask in enumerate(levels):
                expected = (frames, math.ceil(height / 2**i) * math.ceil(width / 2**i))
                if tuple(mask.shape) != expected:
                    raise InputError(
                        f"The {name} mask at level {i} must be {list(expected)} for a {height}x{width} latent "
                        f"with {frames} frames, got {list(mask.shape)}."
                    )

    @staticmethod
    def _add_face_features(x: torch.Tensor, face: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
        """Adds the face-locator features to the conditional (last) half only."""
        x.unflatten(0, (batch, frames))[-1] += face[0].transpose(0, 1).to(x.dtype)
        return x

    def _spectral_filter(self, x: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
        video = x.unflatten(0, (batch, frames)).transpose(1, 2)  # [b, C, f, h, w] view
        return self.hidden_spectral_weighting(video).transpose(1, 2).flatten(0, 1)
