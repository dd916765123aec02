"""Typed conditioning of the denoising UNet for one clip (CFG layout [uncond, cond], quirk 10 of
docs/official_quirks.md; a single conditional half without classifier-free guidance)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from singer_core.models.reference_bank import ReferenceBank


@dataclass(frozen=True)
class RegionMasks:
    """Full / face / lip masks of one UNet level, each ``[(b f), hw, 1]`` (ready to gate tokens)."""

    full: torch.Tensor
    face: torch.Tensor
    lip: torch.Tensor


@dataclass
class MaskPyramid:
    """Full (background/pose), face and lip region masks at the 4 UNet levels.

    Level ``i`` is ``[f, (h/2^i)*(w/2^i)]`` for a latent of ``h x w`` (official
    ``pixel_values_*_mask`` lists, not yet doubled for CFG).
    """

    full: list[torch.Tensor]
    face: list[torch.Tensor]
    lip: list[torch.Tensor]

    def level(self, i: int, halves: int, dtype: torch.dtype) -> RegionMasks:
        def expand(mask: torch.Tensor) -> torch.Tensor:
            return mask.to(dtype).repeat(halves, 1).unsqueeze(-1)

        return RegionMasks(expand(self.full[i]), expand(self.face[i]), expand(self.lip[i]))


@dataclass
class DenoiseConditions:
    """Everything the denoising UNet reads besides the noisy latents and the timestep.

    * ``bank``: reference features of this clip (``ReferenceUNet2D.write_bank``).
    * ``image_tokens`` ``[2, T, C]``: ``[imageproj(zeros), imageproj(face_emb)]`` (``[1, T, C]``
      without CFG: the conditional half only; the number of halves is taken from here).
    * ``audio_tokens`` ``[2, f, tokens, A]``: ``[zeros, msm(audioproj(...))]`` (``[1, ...]`` without CFG).
    * ``face_features`` ``[1, C0, 1 or f, h, w]``: face-locator output, added to the
      conditional half after ``conv_in`` (the unconditional half gets zeros, i.e. nothing).
    * ``masks``: region masks; ``motion_scale``: weights of the full / face / lip audio paths.
    """

    bank: ReferenceBank
    image_tokens: torch.Tensor
    audio_tokens: torch.Tensor
    face_features: torch.Tensor
    masks: MaskPyramid
    motion_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class FrameConditions:
    """``DenoiseConditions`` laid out per frame (``(b f)`` batch) for one UNet call."""

    bank: ReferenceBank
    halves: int
    frames: int
    context: torch.Tensor  # [(b f), T, C]
    audio: torch.Tensor  # [(b f), tokens, A]
    masks: list[RegionMasks]
    motion_scale: tuple[float, float, float]
    silent_rows: int = 0  # leading rows whose audio tokens are all zero (the official unconditional half)

    @classmethod
    def build(cls, cond: DenoiseConditions, frames: int, levels: int, dtype: torch.dtype) -> FrameConditions:
        halves = cond.image_tokens.shape[0]
        audio = cond.audio_tokens.to(dtype).flatten(0, 1)
        silent = frames if halves == 2 and not audio[:frames].any() else 0
        return cls(
            bank=cond.bank,
            halves=halves,
            frames=frames,
            context=cond.image_tokens.to(dtype).repeat_interleave(frames, dim=0),
            audio=audio,
            masks=[cond.masks.level(i, halves, dtype) for i in range(levels)],
            motion_scale=tuple(float(s) for s in cond.motion_scale),
            silent_rows=silent,
        )
