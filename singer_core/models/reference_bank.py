"""Explicit reference-attention state shared by the reference and the denoising UNet.

The official code keeps these features in ``bank`` lists monkey-patched onto every
transformer block; here they live in one object per clip that the reference UNet fills
(write pass) and the denoising UNet reads (every step).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch

# ReferenceAttentionControl.update() casts every entry to float16, even in float32 runs
# (quirk 2 of docs/official_quirks.md).
BANK_DTYPE = torch.float16


@dataclass
class ReferenceBank:
    """``norm1`` outputs of the reference UNet's transformer blocks, keyed by block path.

    Paths are the module paths shared by both UNets, e.g.
    ``"down_blocks.0.attentions.0.transformer_blocks.0"``. Each entry is
    ``[halves, 1 + n_motion, hw, c]``: per CFG half ([uncond, cond] rows of the official write
    batch; one half without CFG), the reference image followed by the motion frames.
    """

    halves: int = 2
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    derived: dict[Hashable, object] = field(default_factory=dict, repr=False)

    def write(self, path: str, rows: torch.Tensor) -> None:
        """``rows`` ``[halves (1 + n_motion), hw, c]`` in the official write-batch order."""
        self.features[path] = rows.to(BANK_DTYPE).unflatten(0, (self.halves, -1))
        self.derived.clear()

    def derive(self, key: Hashable, compute: Callable[[], object]) -> object:
        """Per-clip memo of values computed from the bank by fixed weights (projected reference
        keys/values, motion-frame states): the same in every denoising call of the clip, so only
        the first call computes them. ``key`` must name the module and dtype it depends on."""
        if key not in self.derived:
            self.derived[key] = compute()
        return self.derived[key]

    @property
    def n_motion(self) -> int:
        return next(iter(self.features.values())).shape[1] - 1 if self.features else 0

    def ref_tokens(self, path: str, dtype: torch.dtype) -> torch.Tensor:
        """Reference-image tokens of each half ``[halves, hw, c]``."""
        return self.features[path][:, 0].to(dtype)

    def motion_tokens(self, path: str, dtype: torch.dtype) -> torch.Tensor:
        """Motion-frame tokens ``[halves, n_motion, hw, c]``."""
        return self.features[path][:, 1:].to(dtype)
