"""Optional colour correction: long songs chained clip to clip tend to drift in colour."""

from __future__ import annotations

import torch


def match_color(frames: torch.Tensor, reference: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Map each RGB channel of a clip to the reference image's mean and standard deviation.

    ``frames`` [N, 3, H, W] and ``reference`` [3, H, W], both in [0, 1]. One affine map per channel
    is fitted over the whole clip (not per frame), so the correction does not flicker within a clip.
    """
    src = frames.float()
    ref = reference.float().to(src.device)
    src_mean, src_std = src.mean(dim=(0, 2, 3), keepdim=True), src.std(dim=(0, 2, 3), keepdim=True)
    ref_mean, ref_std = ref.mean(dim=(1, 2)).view(1, 3, 1, 1), ref.std(dim=(1, 2)).view(1, 3, 1, 1)
    matched = (src - src_mean) * (ref_std / (src_std + eps)) + ref_mean
    return matched.clamp(0, 1).to(frames.dtype)
