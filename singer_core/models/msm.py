"""SINGER's Multi-scale Spectral Module (MSM): wavelet-domain gating of the audio tokens.

Official class: ``MultiSpectralAttentionLayer`` (the Net's ``audioembed``), see fixtures
README section 2. The latents are weighted by a fixed random map, pooled per quarter of
the latent rows into four scalars (one per Haar sub-band), and those scalars scale the
sub-bands of the audio tokens' 2D Haar transform over (tokens, frames).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from singer_core.config import MsmConfig
from singer_core.errors import InputError
from singer_core.models.wavelets import SUBBANDS as SUBBAND_NAMES
from singer_core.models.wavelets import HaarDWT, HaarIDWT, pad_to_even

SUBBANDS = len(SUBBAND_NAMES)  # the latent rows are split into this many quarters, quarter k scales sub-band k


class SpectralWeightBuffer(nn.Module):
    """Holds the official ``dct_layer.weight`` buffer ``[batchsize, channel, nframes, dct_h, dct_w]``.

    Only its sum over the batch and frame axes reaches the output (README section 2,
    step 1), so the forward pass uses that ``[channel, dct_h, dct_w]`` sum, cached until
    the buffer changes: a new tensor (``.to()``, ``assign`` loads), a load into it, or an
    in-place write (tracked by the version counter, which inference-mode tensors lack).
    """

    def __init__(self, config: MsmConfig) -> None:
        super().__init__()
        self.register_buffer(
            "weight", torch.randn(config.batchsize, config.channel, config.nframes, config.dct_h, config.dct_w)
        )
        self._cache: tuple[tuple, torch.Tensor] | None = None
        self.register_load_state_dict_post_hook(SpectralWeightBuffer._forget_cache)

    def _forget_cache(self, incompatible_keys) -> None:
        self._cache = None

    def weight_sum(self, height: int, width: int) -> torch.Tensor:
        """The ``[channel, height, width]`` weight map in float32 (resampled if not native size)."""
        weight = self.weight
        version = None if weight.is_inference() else weight._version
        key = (height, width, weight.device, weight.dtype, weight.data_ptr(), version)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, _resample_energy_matched(weight.float().sum((0, 2)), height, width))
        return self._cache[1]


def _resample_energy_matched(weight_sum: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize ``[c, H, W]`` to ``[c, height, width]``; identity at the native size.

    Bilinear resize, then every (channel, quarter of rows) block is rescaled to its native
    L2 norm: for i.i.d. unit noise latents (what MSM sees at inference, quirk 6 of docs/official_quirks.md) each pooled
    value is then distributed exactly as at the native size.
    """
    if tuple(weight_sum.shape[-2:]) == (height, width):
        return weight_sum
    resized = F.interpolate(
        weight_sum[None], size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )
    native = weight_sum.unflatten(1, (SUBBANDS, -1))
    blocks = resized[0].unflatten(1, (SUBBANDS, -1))
    energy = native.square().sum((2, 3)) / blocks.square().sum((2, 3)).clamp_min(torch.finfo(blocks.dtype).tiny)
    return (blocks * energy.sqrt()[:, :, None, None]).flatten(1, 2)


class MultiScaleSpectralModule(nn.Module):
    """MSM: ``forward(audio_embs [b, f, tokens, dim], latents [n, c, f', H, W]) -> [b, f, tokens, dim]``.

    Built from an ``MsmConfig`` (the official positional arguments as named fields:
    ``MsmConfig.from_official_args``); ``reduction`` is unused (as in the official code) and ``chunk``,
    the fc input width, equals ``channel`` (the fc acts on the latent channels).

    Beyond the official code (which needs H, W == dct_h, dct_w and even tokens/frames):

    * **Other latent sizes**: the ``[channel, dct_h, dct_w]`` weight sum is bilinearly
      resized to ``(H, W)`` and each (channel, row-quarter) block rescaled to its native
      L2 norm (see ``_resample_energy_matched``); exact at the native size. H must be a
      multiple of 4.
    * **Odd frame or token counts**: the audio tokens are padded by replicating the last
      frame/token before the Haar transform and cropped back afterwards; with even counts
      nothing is padded, so the official result is unchanged.

    The sub-band scales sum over the latent frames (official behaviour: they grow with f).
    The official forward also writes ``res.pt`` to the working directory; this one does not.
    """

    def __init__(self, config: MsmConfig | None = None) -> None:
        super().__init__()
        config = config or MsmConfig()
        self.config = config
        self.channel = config.channel
        self.reduction = config.reduction
        self.dct_layer = SpectralWeightBuffer(config)
        self.dwt = HaarDWT()
        self.idwt = HaarIDWT()
        self.fc = nn.Sequential(
            nn.Linear(config.chunk, config.chunk // 2, bias=False),
            nn.ReLU(),
            nn.Linear(config.chunk // 2, 1, bias=False),
            nn.Sigmoid(),
        )

    def subband_scales(self, latents: torch.Tensor) -> torch.Tensor:
        """``[4, n]``: one scale per Haar sub-band (row k of the official ``view(4, n, 1, 1, 1)``)."""
        self._check_latents(latents)
        height, width = latents.shape[-2:]
        weight = self.dct_layer.weight_sum(height, width).to(latents.dtype)
        weighted = latents * weight[:, None]  # [n, c, f, H, W]
        pooled = weighted.unflatten(3, (SUBBANDS, height // SUBBANDS)).sum((4, 5))  # [n, c, f, 4]
        return self.fc(pooled.permute(3, 0, 2, 1)).sum(dim=(2, 3))  # fc over c, then sum over frames

    def forward(self, audio_embs: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        if audio_embs.dim() != 4:
            raise InputError(
                f"MSM: audio embeddings must be [batch, frames, tokens, dim], got {tuple(audio_embs.shape)}."
            )
        scales = self.subband_scales(latents)
        if scales.shape[1] not in (1, audio_embs.shape[0]):
            raise InputError(
                f"MSM: latent batch {scales.shape[1]} does not match audio batch {audio_embs.shape[0]} "
                "(use 1 or the same batch)."
            )
        frames, tokens = audio_embs.shape[1:3]
        grid = pad_to_even(audio_embs.transpose(3, 1), (2, 3))  # [b, dim, tokens, frames]
        bands = self.dwt(grid)
        scaled = [band * scale[:, None, None, None] for band, scale in zip(bands, scales, strict=True)]
        return self.idwt(*scaled)[:, :, :tokens, :frames].transpose(3, 1)

    def _check_latents(self, latents: torch.Tensor) -> None:
        if latents.dim() != 5 or latents.shape[1] != self.channel:
            raise InputError(
                f"MSM: latents must be [batch, {self.channel}, frames, height, width], got {tuple(latents.shape)}."
            )
        if latents.shape[3] % SUBBANDS:
            raise InputError(f"MSM: latent height must be a multiple of {SUBBANDS}, got {latents.shape[3]}.")
