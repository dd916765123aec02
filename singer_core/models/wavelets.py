"""Single-level 2D Haar wavelet transform in the official SINGER band order.

The official ``DWT_2D('haar')`` returns ``(LL, LH, HL, HH)`` and rebuilds its
transform matrices on every call. We wrap pytorch_wavelets' filter-bank
implementation instead (built once, filters follow ``.to()``) and map its
``(yl, yh)`` output to the official order (fixtures README section 1); this module is the one home of that
order (``SUBBANDS``) and of the mapping (``PYTORCH_WAVELETS_HIGH_INDEX``):
``LL = yl``, ``LH = yh[:, :, 1]``, ``HL = yh[:, :, 0]``, ``HH = yh[:, :, 2]``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings
from pathlib import Path
from typing import BinaryIO

import torch
from torch import nn

from singer_core.errors import InputError


def _pkg_resources_importable() -> bool:
    if "pkg_resources" in sys.modules:
        return sys.modules["pkg_resources"] is not None
    try:
        return importlib.util.find_spec("pkg_resources") is not None
    except (ImportError, ValueError):
        return False


def _resource_stream(package: str, resource: str) -> BinaryIO:
    """What ``pkg_resources.resource_stream`` does for a data file inside an installed package folder."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} not found")
    return open(Path(next(iter(spec.submodule_search_locations))) / resource, "rb")


def import_pytorch_wavelets() -> types.ModuleType:
    """Import pytorch_wavelets whatever setuptools the environment has (any version, or none).

    pytorch_wavelets 1.3's package ``__init__`` imports its DTCWT module, whose ``coeffs.py`` runs
    ``from pkg_resources import resource_stream`` (only called when DTCWT tables are loaded, which SINGER never
    does). ``pkg_resources`` left setuptools in 81 and Python >= 3.12 venvs have no setuptools at all, so a plain
    import fails there. When, and only when, ``pkg_resources`` is missing, a minimal stand-in offering
    ``resource_stream`` is put in ``sys.modules`` for the duration of this one import and removed right after:
    the user's environment is not changed, nothing else can see the stand-in, and pytorch_wavelets is imported
    whole and normally (so another node pack importing it later gets the complete package, DTCWT included,
    whose table loading keeps working through the stand-in's function). The alternative of importing only the
    DWT submodules without running the package ``__init__`` would leave a half-initialised ``pytorch_wavelets``
    in ``sys.modules`` for everyone else. With an old setuptools the real ``pkg_resources`` is used and its
    deprecation warning is silenced.
    """
    if "pytorch_wavelets" in sys.modules:
        return sys.modules["pytorch_wavelets"]
    if _pkg_resources_importable():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            return importlib.import_module("pytorch_wavelets")
    stand_in = types.ModuleType("pkg_resources", "SINGER's import-time stand-in (see singer_core/models/wavelets.py)")
    stand_in.resource_stream = _resource_stream
    sys.modules["pkg_resources"] = stand_in
    try:
        return importlib.import_module("pytorch_wavelets")
    finally:
        if sys.modules.get("pkg_resources") is stand_in:
            del sys.modules["pkg_resources"]


_pytorch_wavelets = import_pytorch_wavelets()
DWTForward, DWTInverse = _pytorch_wavelets.DWTForward, _pytorch_wavelets.DWTInverse

Bands = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

# The official DWT_2D return order; MSM/SFM scale sub-band k with their k-th weight (docs/official_quirks.md).
SUBBANDS = ("LL", "LH", "HL", "HH")
# Where pytorch_wavelets' DWTForward puts each high band: yh[0][:, :, index] (measured, fixtures README section 1).
PYTORCH_WAVELETS_HIGH_INDEX = {"HL": 0, "LH": 1, "HH": 2}
_HIGH_BANDS_IN_PYTORCH_WAVELETS_ORDER = tuple(sorted(PYTORCH_WAVELETS_HIGH_INDEX, key=PYTORCH_WAVELETS_HIGH_INDEX.get))


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


def _filter_dtype(transform: nn.Module) -> torch.dtype:
    return next(transform.buffers()).dtype


def _run_transform(transform: nn.Module, tensors: list[torch.Tensor], call):
    """Run a pytorch_wavelets transform; under autocast, with autocast off and in its filters' dtype.

    Its autograd functions run the backward convolutions outside autocast with the filters as they are, so a
    band computed under autocast in bf16 would get a bf16 gradient its float32 filters refuse (training with
    mixed precision). Outside autocast nothing changes: the input already has the filters' dtype.
    """
    device = tensors[0].device.type
    if not torch.is_autocast_enabled(device):
        return call(*tensors)
    dtype = _filter_dtype(transform)
    with torch.autocast(device, enabled=False):
        return call(*(t.to(dtype) for t in tensors))


class HaarDWT(nn.Module):
    """``x (N, C, H, W) -> (LL, LH, HL, HH)``, each ``(N, C, H/2, W/2)``; H and W must be even."""

    def __init__(self) -> None:
        super().__init__()
        self.transform = _filters_not_in_state_dict(DWTForward(J=1, wave="haar", mode="zero"))

    def forward(self, x: torch.Tensor) -> Bands:
        _check_even(x, "Haar DWT input")
        low, (high,) = _run_transform(self.transform, [x], self.transform)
        return (low, *(high[:, :, PYTORCH_WAVELETS_HIGH_INDEX[band]] for band in SUBBANDS[1:]))


class HaarIDWT(nn.Module):
    """``(LL, LH, HL, HH) -> x (N, C, 2h, 2w)``: the exact inverse of :class:`HaarDWT`."""

    def __init__(self) -> None:
        super().__init__()
        self.transform = _filters_not_in_state_dict(DWTInverse(wave="haar", mode="zero"))

    def forward(self, ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
        shapes = {tuple(band.shape) for band in (ll, lh, hl, hh)}
        if len(shapes) != 1:
            raise InputError(f"Haar IDWT: the four bands must have the same shape, got {sorted(shapes)}.")
        return _run_transform(self.transform, [ll, lh, hl, hh], self._inverse)

    def _inverse(self, ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
        high = {"LH": lh, "HL": hl, "HH": hh}
        return self.transform((ll, [torch.stack([high[band] for band in _HIGH_BANDS_IN_PYTORCH_WAVELETS_ORDER], 2)]))


def pad_to_even(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Replicate the last entry along each odd-sized axis in ``dims`` (undo with a slice)."""
    for dim in dims:
        if x.shape[dim] % 2:
            x = torch.cat([x, x.narrow(dim, x.shape[dim] - 1, 1)], dim=dim)
    return x
