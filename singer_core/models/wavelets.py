"""Single-level 2D Haar wavelet transform in the official SINGER band order.

The official ``DWT_2D('haar')`` returns ``(LL, LH, HL, HH)`` and rebuilds its
transform matrices on every call. We wrap pytorch_wavelets' filter-bank
implementation instead (built once, filters follow ``.to()``) and map its
``(yl, yh)`` output to the official order (fixtures README section 1):
``LL = yl``, ``LH = yh[:, :, 1]``, ``HL = yh[:, :, 0]``, ``HH = yh[:, :, 2]``.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from singer_core.errors import InputError

with warnings.catch_warnings():
    # pytorch_wavelets 1.3 imports pkg_resources for its (unused here) DTCWT tables.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    from pytorch_wavelets import DWTForward, DWTInverse

Bands = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _filters_not_in_state_dict(module: nn.Module) -> nn.Module:
    """Keep the fixed Haar filters out of ``state_dict`` (the official checkpoint has no such keys)."""
    for name, buffer in list(module.named_buffers(recurse=False)):
        module.register_buffer(name, buffer, persistent=False)
    return module


def _check_even(x: torch.Tensor, what: str) -> None:
    if x.dim() != 4:
        raise InputError(f"{what}: expected a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}.")
    height, width = x.shape[-2:]
    if height % 2 or width % 2:
        raise InputError(
            f"{what}: the Haar wavelet transform needs an even height and width, got {height}x{width}. "
            "Pad or resize the input to even sizes."
        )


class HaarDWT(nn.Module):
    """``x (N, C, H, W) -> (LL, LH, HL, HH)``, each ``(N, C, H/2, W/2)``; H and W must be even."""

    def __init__(self) -> None:
        super().__init__()
        self.transform = _filters_not_in_state_dict(DWTForward(J=1, wave="haar", mode="zero"))

    def forward(self, x: torch.Tensor) -> Bands:
        _check_even(x, "Haar DWT input")
        low, (high,) = self.transform(x)
        return low, high[:, :, 1], high[:, :, 0], high[:, :, 2]


class HaarIDWT(nn.Module):
    """``(LL, LH, HL, HH) -> x (N, C, 2h, 2w)``: the exact inverse of :class:`HaarDWT`."""

    def __init__(self) -> None:
        super().__init__()
        self.transform = _filters_not_in_state_dict(DWTInverse(wave="haar", mode="zero"))

    def forward(self, ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
        shapes = {tuple(band.shape) for band in (ll, lh, hl, hh)}
        if len(shapes) != 1:
            raise InputError(f"Haar IDWT: the four bands must have the same shape, got {sorted(shapes)}.")
        return self.transform((ll, [torch.stack([hl, lh, hh], dim=2)]))


def pad_to_even(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Replicate the last entry along each odd-sized axis in ``dims`` (undo with a slice)."""
    for dim in dims:
        if x.shape[dim] % 2:
            x = torch.cat([x, x.narrow(dim, x.shape[dim] - 1, 1)], dim=dim)
    return x
