"""Explicit reference-attention state shared by the reference and the denoising UNet.

The official code keeps these features in ``bank`` lists monkey-patched onto every
transformer block; here they live in one object per clip that the reference UNet fills
(write pass) and the denoising UNet reads (every step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# ReferenceAttentionControl.update() casts every entry to float16 (quirk 2), even in float32 runs.
BANK_DTYPE = torch.float16


@dataclass
class ReferenceBank:
    """``norm1`` outputs of the reference UNet's transformer blocks, keyed by block path.

    Paths are the module paths shared by both UNets, e.g.
    ``"down_blocks.0.attentions.0.transformer_blocks.0"``.

    * ``ref[path]`` ``[1, hw, c]``: reference-image tokens of the conditional CFG half (the only
      half whose self-attention reads them, quirk 4).
    * ``motion[path]`` ``[2, n_motion, hw, c]``: motion-frame tokens of the [uncond, cond] halves,
      concatenated in front of the frames before the motion modules (quirk 1).
    """

    ref: dict[str, torch.Tensor] = field(default_factory=dict)
    motion: dict[str, torch.Tensor] = field(default_factory=dict)

    def write(self, path: str, ref: torch.Tensor, motion: torch.Tensor) -> None:
        self.ref[path] = ref.to(BANK_DTYPE)
        self.motion[path] = motion.to(BANK_DTYPE)

    @property
    def n_motion(self) -> int:
        return next(iter(self.motion.values())).shape[1] if self.motion else 0

    def ref_tokens(self, path: str, dtype: torch.dtype) -> torch.Tensor:
        return self.ref[path].to(dtype)

    def motion_tokens(self, path: str, dtype: torch.dtype) -> torch.Tensor:
        return self.motion[path].to(dtype)
