"""Conditioning computed once per generation (it does not change between steps or clips).

CFG order is the official [uncond, cond] (quirk 10); the denoising UNet doubles the masks itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from singer_core.models.conditions import MaskPyramid
from singer_core.pipeline.inputs import ReferenceInputs


@dataclass
class Conditions:
    """Per-generation conditioning of the denoising UNet."""

    image_tokens: torch.Tensor  # [2, T, C]  imageproj of [zeros, face embedding]; [1, T, C] without CFG
    face_features: torch.Tensor  # [1, C0, 1, h, w]  face locator of one frame (the region is the same in all)
    masks: MaskPyramid  # 4 levels of [f, hw]


def _repeat(levels, frames: int, device, dtype) -> list[torch.Tensor]:
    """One frame per level -> ``[f, hw]`` (official ``mask.repeat(clip_length, 1)``)."""
    return [mask.reshape(-1, mask.shape[-1])[:1].repeat(frames, 1).to(device, dtype) for mask in levels]


@torch.no_grad()
def build_conditions(net, reference: ReferenceInputs, frames: int, device, dtype, cfg: bool = True) -> Conditions:
    """Image tokens, face-locator features and mask pyramids for clips of ``frames`` frames
    (``cfg`` False: the conditional image tokens alone, the official no-guidance branch).

    The face locator is a per-frame convolution and the face region is the same in every frame, so
    one frame is computed and broadcast over the clip.
    """
    embedding = reference.face_embedding.reshape(1, -1).to(device, dtype)
    tokens = net.imageproj(embedding)
    if cfg:
        tokens = torch.cat([net.imageproj(torch.zeros_like(embedding)), tokens])
    region = reference.face_region.to(device, dtype)[None, :, None]  # [1, 3, 1, H, W]
    masks = MaskPyramid(
        full=_repeat(reference.full_mask, frames, device, dtype),
        face=_repeat(reference.face_mask, frames, device, dtype),
        lip=_repeat(reference.lip_mask, frames, device, dtype),
    )
    return Conditions(image_tokens=tokens, face_features=net.face_locator(region), masks=masks)


@torch.no_grad()
def project_audio(net, windows: torch.Tensor, device, dtype, chunk: int = 16) -> torch.Tensor:
    """Official ``audioproj`` on windows ``[n, 5, layers, hidden]`` -> tokens ``[n, 32, dim]``, in chunks
    of ``chunk`` frames (the official per-clip call; each frame's tokens depend on that frame only)."""
    parts = [net.audioproj(part[None].to(device, dtype))[0] for part in windows.split(chunk)]
    return torch.cat(parts)
