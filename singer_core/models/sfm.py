"""SINGER's Spectral Filter Module (SFM): wavelet-domain filtering of the UNet mid-block output.

Official class: ``hidden_spectral_weighting`` in ``unet_3d_revised.py`` (the denoising UNet's
``hidden_spectral_weighting``), see fixtures README section 3 and quirk 7 of docs/official_quirks.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from singer_core.config import SfmConfig
from singer_core.errors import InputError
from singer_core.models.wavelets import SUBBANDS, HaarDWT, HaarIDWT, pad_to_even


def resize_last_axis(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resample the last axis to ``size``: area averaging when shrinking, linear when growing."""
    if x.shape[-1] == size:
        return x
    rows = x.reshape(-1, 1, x.shape[-1])
    if size < x.shape[-1]:
        rows = F.adaptive_avg_pool1d(rows, size)
    else:
        rows = F.interpolate(rows, size=size, mode="linear", align_corners=False)
    return rows.reshape(*x.shape[:-1], size)


class SpectralFilterModule(nn.Module):
    """SFM: ``forward(x [b, C, f, h, w]) -> [b, C, f, h, w]``; the result replaces ``x`` (no residual).

    Built from an ``SfmConfig`` (``SfmConfig.for_unet`` for the net's mid block).

    ``y = gate(x) * IDWT(W0·LL, W1·LH, W2·HL, W3·HH)`` per frame, where ``Wk[c]`` is the
    ``weight`` summed over its singleton, and two spatial axes (only that ``[4, C]`` sum
    matters) and ``gate = sigmoid(fc2(relu(fc1(x))))`` with the fc acting on the **width**
    axis, so the official code needs ``w == heads``.

    Beyond the official code:

    * **Other widths** (other image sizes): the width axis is resampled to ``heads`` before
      the fc (area average when shrinking, linear when growing) and the gate is resampled
      back to ``w``. At ``w == heads`` no resampling happens, so the result is the official
      one exactly. The height never enters the fc, so ``h != w`` needs nothing extra.
    * **Odd h or w**: the frame is padded by replicating its last row/column for the Haar
      transform and the filtered map is cropped back.
    """

    def __init__(self, config: SfmConfig) -> None:
        super().__init__()
        if config.chunks != len(SUBBANDS):
            raise ValueError(f"SFM: chunks must be {len(SUBBANDS)} (one per Haar sub-band), got {config.chunks}.")
        self.config = config
        heads = self.heads = config.heads
        self.weight = nn.Parameter(torch.randn(config.chunks, 1, config.channels, heads // 2, heads // 2))
        self.dwt = HaarDWT()
        self.idwt = HaarIDWT()
        self.fc = nn.Sequential(
            nn.Linear(heads, heads // 2, bias=False),
            nn.ReLU(),
            nn.Linear(heads // 2, heads, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.weight.shape[2]:
            raise InputError(
                f"SFM: expected [batch, {self.weight.shape[2]}, frames, height, width], got {tuple(x.shape)}."
            )
        batch, channels, frames, height, width = x.shape
        per_frame = x.transpose(1, 2).reshape(batch * frames, channels, height, width)  # (b f) c h w, b-major
        out = self.width_gate(per_frame) * self.filter_subbands(per_frame)
        return out.reshape(batch, frames, channels, height, width).transpose(1, 2)

    def filter_subbands(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each Haar sub-band per channel and transform back; ``[N, C, h, w]`` in and out."""
        height, width = x.shape[-2:]
        scales = self.weight.sum(dim=(1, 3, 4))  # [4, C]
        bands = self.dwt(pad_to_even(x, (2, 3)))
        scaled = [band * scale[:, None, None] for band, scale in zip(bands, scales, strict=True)]
        return self.idwt(*scaled)[..., :height, :width]

    def width_gate(self, x: torch.Tensor) -> torch.Tensor:
        """``sigmoid(fc(x))`` over the width axis, resampled through ``heads`` columns if needed."""
        return resize_last_axis(self.fc(resize_last_axis(x, self.heads)), x.shape[-1])
