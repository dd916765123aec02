"""Paste the generated window back into the whole photo, at the photo's own size and aspect ratio.

The model sees a window of the photo (``ReferenceFace.crop_box``: around the face for ``framing='face'``, the
whole photo for ``'full'``) resized to the output size. :class:`PasteBack` puts each generated frame back where
that window came from:

* the frame is resized to the window's size in photo pixels with ``torch.nn.functional.interpolate`` (bicubic,
  antialiased, clamped to [0, 1]): the frames are already float tensors, so there is no uint8 round trip, the
  antialias filter covers windows smaller than the model size, and it is the same op on every host;
* over a band inside the window's edges (``band`` x the window's shorter side, default 0.1) it is cross-faded into
  the photo with a smoothstep ramp, whose slope is zero at both ends of the band, so neither edge of the band shows
  a step; an edge of the window that lies on the photo's border is not feathered (nothing lies beyond it);
* optionally (``color_match``) each frame's window is mapped, channel by channel, to the mean and standard
  deviation of the photo in the band (the photo under the whole window when there is no band);
* every pixel outside the window is the photo's own value, bit for bit (a copy, never recomputed).

H.264 (yuv420p) needs even sizes: the canvas is the photo with its last column and/or row dropped when the width
and/or height is odd (one pixel, never a rescale, so the pixels that stay are still the photo's). The same canvas is
used for IMAGE output, so the node's frames and the command line's video have the same size.

Frames are composited a few at a time (:meth:`PasteBack.stream`: at most ``PIECE_BYTES`` of full-size float output
per piece), so a song's frames are never held at full size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from singer_core.errors import InputError

DEFAULT_BAND = 0.1  # fraction of the window's shorter side (in photo pixels) that is cross-faded into the photo
MAX_BAND = 0.5
PIECE_BYTES = 64 * 2**20  # full-size float32 output per composited piece (2 frames at 1080x1920)
COLOR_GAIN_LIMITS = (0.5, 2.0)  # the colour match never scales a channel's contrast by more than this
PREVIEW_DIM = 0.35  # brightness of the photo outside the window in the placement preview
PREVIEW_OUTLINE = (1.0, 0.85, 0.0)


def even_size(width: int, height: int) -> tuple[int, int]:
    """The canvas for a ``width`` x ``height`` photo: the largest even size inside it (H.264 needs even sizes)."""
    return width - width % 2, height - height % 2


@dataclass(frozen=True)
class Placement:
    """Where the model's window sits in the photo.

    ``box`` (x1, y1, x2, y2) is the window in photo pixels; it may reach past the canvas (a framing that pads, or
    the column/row dropped for even sizes), and only its part on the canvas is pasted. ``window_size`` is the
    generated frame's (width, height); ``canvas_size`` the output's (the photo, even-rounded).
    """

    box: tuple[int, int, int, int]
    window_size: tuple[int, int]
    canvas_size: tuple[int, int]

    @classmethod
    def of(cls, crop_box, window_width: int, window_height: int, photo_width: int, photo_height: int) -> Placement:
        x1, y1, x2, y2 = (int(v) for v in crop_box)
        if x2 <= x1 or y2 <= y1 or x2 <= 0 or y2 <= 0 or x1 >= photo_width or y1 >= photo_height:
            raise InputError(
                f"The reference window ({x1}, {y1})-({x2}, {y2}) does not lie on the {photo_width}x{photo_height} "
                "photo; paste back into the same photo the reference was made from."
            )
        canvas = even_size(photo_width, photo_height)
        if min(canvas) < 2:
            raise InputError(f"The photo ({photo_width}x{photo_height}) is too small to paste a window into.")
        return cls((x1, y1, x2, y2), (int(window_width), int(window_height)), canvas)

    @property
    def scale(self) -> tuple[float, float]:
        """Photo pixels per window pixel, horizontally and vertically."""
        x1, y1, x2, y2 = self.box
        return (x2 - x1) / self.window_size[0], (y2 - y1) / self.window_size[1]

    @property
    def visible(self) -> tuple[int, int, int, int]:
        """The part of ``box`` on the canvas."""
        x1, y1, x2, y2 = self.box
        width, height = self.canvas_size
        return max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)

    def band_pixels(self, band: float) -> float:
        x1, y1, x2, y2 = self.box
        return band * min(x2 - x1, y2 - y1)

    def feather(self, band: float) -> torch.Tensor:
        """[h, w] weights of the generated frame over the visible window: 0 at a feathered edge, 1 inside the band."""
        x1, y1, x2, y2 = self.box
        vx1, vy1, vx2, vy2 = self.visible
        width, height = self.canvas_size
        pixels = self.band_pixels(band)
        across = _ramp(np.arange(vx1, vx2) - x1, pixels, x1 > 0) * _ramp(x2 - 1 - np.arange(vx1, vx2), pixels,
                                                                          x2 < width)  # fmt: skip
        down = _ramp(np.arange(vy1, vy2) - y1, pixels, y1 > 0) * _ramp(y2 - 1 - np.arange(vy1, vy2), pixels,
                                                                        y2 < height)  # fmt: skip
        return torch.from_numpy(np.outer(down, across).astype(np.float32))


def _ramp(distance: np.ndarray, pixels: float, feathered: bool) -> np.ndarray:
    """Smoothstep of the distance (pixel centres) from the window's edge over ``pixels``; 1 on an edge not feathered."""
    if not feathered or pixels <= 0:
        return np.ones(len(distance))
    t = np.clip((distance + 0.5) / pixels, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def check_band(band: float) -> float:
    if isinstance(band, bool) or not isinstance(band, (int, float)) or not 0 <= band <= MAX_BAND:
        raise InputError(
            f"paste band must be a number from 0 to {MAX_BAND} (got {band!r}): the fraction of the window's shorter "
            f"side that is cross-faded into the photo (default {DEFAULT_BAND}; 0 pastes the window with a hard edge)."
        )
    return float(band)


def photo_tensor(photo) -> torch.Tensor:
    """[H, W, 3] float32 of a uint8 HxWx3 array (/ 255, as ComfyUI's Load Image) or of a float IMAGE
    ([H, W, 3] or [1, H, W, 3], kept as it is so the pixels outside the window are the input's own)."""
    if isinstance(photo, np.ndarray) and photo.dtype == np.uint8:
        tensor = torch.tensor(photo).float() / 255.0  # a copy: the array may be read-only (PIL)
    else:
        tensor = torch.as_tensor(photo)
        if not tensor.is_floating_point():
            raise InputError(f"The photo must be uint8 or float in [0, 1] (got {tensor.dtype}).")
        tensor = tensor.detach().cpu().float()
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[-1] < 3:
        raise InputError(f"The photo must be one RGB image [height, width, 3] (got shape {list(tensor.shape)}).")
    return tensor[..., :3].contiguous()


class PasteBack:
    """Composites generated window frames into the photo (see the module docstring)."""

    def __init__(self, photo, placement: Placement, band: float = DEFAULT_BAND, color_match: bool = False) -> None:
        self.placement, self.band, self.color_match = placement, check_band(band), bool(color_match)
        image = photo_tensor(photo)
        width, height = placement.canvas_size
        if image.shape[1] < width or image.shape[0] < height:
            raise InputError(f"The photo is {image.shape[1]}x{image.shape[0]} but the window was placed on a "
                             f"{width}x{height} canvas; paste into the photo the reference was made from.")  # fmt: skip
        self.canvas = image[:height, :width].contiguous()
        x1, y1, x2, y2 = placement.visible
        self.weights = placement.feather(self.band)[..., None]  # [h, w, 1]
        self._under = self.canvas[y1:y2, x1:x2]  # the photo under the window
        ring = (self.weights[..., 0] > 0) & (self.weights[..., 0] < 1)
        self._stats_at = ring if bool(ring.any()) else torch.ones_like(ring)
        target = self._under[self._stats_at]
        self._target_mean, self._target_std = target.mean(0), target.std(0, unbiased=False)

    @classmethod
    def for_reference(cls, photo, reference, band: float = DEFAULT_BAND, color_match: bool = False) -> PasteBack:
        """For a :class:`~singer_core.face.ReferenceFace` made from ``photo``."""
        image = photo_tensor(photo)
        placement = Placement.of(reference.crop_box, reference.width, reference.height, image.shape[1], image.shape[0])
        return cls(image, placement, band, color_match)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the composited frames."""
        return self.placement.canvas_size

    @property
    def frames_per_piece(self) -> int:
        width, height = self.size
        return max(1, PIECE_BYTES // (width * height * 3 * 4))

    def composite(self, frames: torch.Tensor) -> torch.Tensor:
        """[n, h, w, 3] generated frames in [0, 1] -> [n, H, W, 3] float32 on the CPU. Each frame is done on its own
        terms (no statistic crosses frames), so the result does not depend on how the song is cut into batches."""
        window_width, window_height = self.placement.window_size
        if frames.dim() != 4 or tuple(frames.shape[1:]) != (window_height, window_width, 3):
            raise InputError(
                f"The frames to paste back must be [n, {window_height}, {window_width}, 3], the reference's size "
                f"(got {list(frames.shape)}); connect the frames generated from this reference."
            )
        window = self._resized(frames.detach().cpu().float())
        if self.color_match:
            window = self._matched(window)
        x1, y1, x2, y2 = self.placement.visible
        out = self.canvas.expand(len(frames), -1, -1, -1).clone()
        out[:, y1:y2, x1:x2] = torch.lerp(self._under.expand_as(window), window, self.weights)
        return out

    def stream(self, batches: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Composite a stream of frame batches, ``frames_per_piece`` frames at a time."""
        for batch in batches:
            for piece in batch.split(self.frames_per_piece):
                yield self.composite(piece)

    def _resized(self, frames: torch.Tensor) -> torch.Tensor:
        """The frames at the window's size in photo pixels, cut to its visible part ([n, h, w, 3])."""
        x1, y1, x2, y2 = self.placement.box
        pixels = frames.permute(0, 3, 1, 2)
        if (x2 - x1, y2 - y1) != self.placement.window_size:
            pixels = F.interpolate(pixels, size=(y2 - y1, x2 - x1), mode="bicubic", align_corners=False,
                                   antialias=True).clamp_(0, 1)  # fmt: skip
        vx1, vy1, vx2, vy2 = self.placement.visible
        return pixels[:, :, vy1 - y1 : vy2 - y1, vx1 - x1 : vx2 - x1].permute(0, 2, 3, 1)

    def _matched(self, window: torch.Tensor) -> torch.Tensor:
        """Each frame's channels mapped to the photo's mean and standard deviation where they are measured."""
        source = window[:, self._stats_at]  # [n, pixels, 3]
        mean, std = source.mean(1), source.std(1, unbiased=False)
        gain = (self._target_std / std.clamp_min(1e-6)).clamp(*COLOR_GAIN_LIMITS)
        shifted = (window - mean[:, None, None]) * gain[:, None, None] + self._target_mean
        return shifted.clamp_(0, 1)


def paste_stream(pieces: Iterable[torch.Tensor], paste: PasteBack | None) -> Iterable[torch.Tensor]:
    """The frames as they are written: composited into the photo when ``paste`` is given, else unchanged. A pure,
    deterministic function of the generated frames, applied when they are encoded."""
    return pieces if paste is None else paste.stream(pieces)


def placement_preview(photo, placement: Placement, band: float = DEFAULT_BAND) -> torch.Tensor:
    """[1, H, W, 3]: the photo (even-rounded canvas) dimmed outside the window, fading in over the band, with the
    window's edge outlined: where the generated video will sit in the picture."""
    canvas = photo_tensor(photo)[: placement.canvas_size[1], : placement.canvas_size[0]]
    x1, y1, x2, y2 = placement.visible
    light = torch.full(canvas.shape[:2], PREVIEW_DIM)
    light[y1:y2, x1:x2] = PREVIEW_DIM + (1 - PREVIEW_DIM) * placement.feather(check_band(band))
    preview = canvas * light[..., None]
    line = max(2, round(min(placement.canvas_size) / 300))
    outline = torch.tensor(PREVIEW_OUTLINE)
    for rows, cols in (((y1, y1 + line), (x1, x2)), ((y2 - line, y2), (x1, x2)), ((y1, y2), (x1, x1 + line)),
                       ((y1, y2), (x2 - line, x2))):  # fmt: skip
        preview[slice(*rows), slice(*cols)] = outline
    return preview[None].contiguous()
