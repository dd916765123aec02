"""Face region and the separated pose/face/lip attention masks, as the official preprocessing builds them.

Official recipe (``get_mask`` + ``ImageProcessor.preprocess`` of SINGER/Hallo), per reference image:

1. face box = face-oval landmark box, rounded, expanded by ``face_expand_ratio`` (``expand_region``);
   lip box = outer-lip box, rounded, expanded by 2.0. Each is drawn as a 0/255 rectangle at the
   resolution of the source frame.
2. the face rectangle, resized to the output size (PIL bilinear) and repeated to 3 channels, is the
   *face region* fed to the face locator.
3. both rectangles are resized to a 64x64 grid (cv2 bilinear), Gaussian-blurred (kernel 51 for the
   face, 31 for the lips, sigma derived from the kernel) and min-max normalised to 0..255 (uint8).
4. pose ("full", background) mask = 255 - blurred face; face mask = blurred face - blurred lips
   (saturating); lip mask = blurred lips.
5. each is resized (PIL bilinear) to the four latent grids H/8, H/16, H/32, H/64 (x W) and flattened
   to ``[1, h*w]``.

At 512x512 the blur grid is the 64x64 latent grid and this module reproduces those steps exactly
(same cv2/PIL calls on the same uint8 data). For other sizes (multiples of 64) the blur runs on the
level-0 latent grid (H/8 x W/8) with kernels scaled by grid/64 per axis, so the blur keeps the same
size relative to the frame; the official code always blurs on a 64x64 grid and then resizes.

Other differences from the official code: rectangles are clipped to the frame (the official slice
wraps around when an expanded box is larger than the image), and a blurred mask that is constant
(box covering the whole frame) is kept as is instead of being normalised to zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from ..errors import InputError

# Mask-level geometry, the one home of these facts: the attention masks are given at the four UNet resolutions,
# the latent grid (VAE downscale 8) and its three halvings, i.e. 8, 16, 32 and 64 image pixels per mask cell.
MASK_LEVEL_STRIDES = (8, 16, 32, 64)
MASK_LEVELS = len(MASK_LEVEL_STRIDES)
SIZE_MULTIPLE = MASK_LEVEL_STRIDES[-1]  # the coarsest level must have whole cells
OFFICIAL_BLUR_GRID = 64
FACE_BLUR_KERNEL = 51
LIP_BLUR_KERNEL = 31
LIP_EXPAND_RATIO = 2.0


@dataclass(frozen=True)
class FaceMasks:
    """Mask inputs of the model for one reference image.

    ``full``/``face``/``lip`` hold one ``[1, h*w]`` float tensor in [0, 1] per latent level
    (H/8, H/16, H/32, H/64); the pipeline repeats them over frames.
    """

    face_region: torch.Tensor
    full: tuple[torch.Tensor, ...]
    face: tuple[torch.Tensor, ...]
    lip: tuple[torch.Tensor, ...]


def check_output_size(width: int, height: int) -> None:
    """Refuse video sizes the net cannot use (same words from the CLI and the nodes)."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < SIZE_MULTIPLE or (
            value % SIZE_MULTIPLE
        ):
            raise InputError(
                f"{name} must be a positive multiple of {SIZE_MULTIPLE} (got {value!r}): width and height must be "
                f"multiples of {SIZE_MULTIPLE} for the four mask levels; the official size is 512x512."
            )


def mask_level_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """(h, w) of the latent grids the attention masks are given at: /8, /16, /32, /64."""
    check_output_size(width, height)
    return [(height // stride, width // stride) for stride in MASK_LEVEL_STRIDES]


def expand_region(box: np.ndarray, frame_w: int, frame_h: int, ratio: float) -> tuple[int, int, int, int]:
    """Official ``expand_region`` arithmetic on a rounded (x1, y1, x2, y2) box: scale about the
    (floored) centre, then shift back inside the frame. Returns (x1, y1, x2, y2)."""
    min_x, min_y, max_x, max_y = (float(v) for v in np.round(np.asarray(box, dtype=np.float64)))
    mid_x = (max_x + min_x) // 2
    mid_y = (max_y + min_y) // 2
    half_x = ((max_x - min_x) * ratio) // 2
    half_y = ((max_y - min_y) * ratio) // 2
    min_x, max_x = _shift_inside(mid_x - half_x, mid_x + half_x, frame_w)
    min_y, max_y = _shift_inside(mid_y - half_y, mid_y + half_y, frame_h)
    return round(min_x), round(min_y), round(max_x), round(max_y)


def _shift_inside(low: float, high: float, size: int) -> tuple[float, float]:
    if low < 0:
        high -= low
        low = 0
    if high > size:
        low -= high - size
        high = size
    return low, high


def box_mask(box: tuple[int, int, int, int], frame_h: int, frame_w: int) -> np.ndarray:
    """0/255 uint8 rectangle [y1:y2, x1:x2], clipped to the frame."""
    x1, y1, x2, y2 = box
    mask = np.zeros((frame_h, frame_w), dtype=np.uint8)
    mask[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = 255
    return mask


def _scaled_kernel(kernel: int, grid: int) -> int:
    return max(1, int(kernel * grid / OFFICIAL_BLUR_GRID)) | 1


def blur_on_grid(mask: np.ndarray, grid_h: int, grid_w: int, kernel: int) -> np.ndarray:
    """Official ``blur_mask`` (resize, Gaussian blur, min-max normalise) on a (grid_h, grid_w) grid."""
    resized = cv2.resize(mask, (grid_w, grid_h))
    ksize = (_scaled_kernel(kernel, grid_w), _scaled_kernel(kernel, grid_h))
    blurred = cv2.GaussianBlur(resized, ksize, 0)
    if blurred.max() == blurred.min():
        return blurred
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX)


def separate_masks(face_blur: np.ndarray, lip_blur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pose/background, face-without-lips, lips) uint8 masks, with the official uint8 arithmetic."""
    background = ((1.0 - face_blur / 255.0) * 255).astype(np.uint8)
    return background, cv2.subtract(face_blur, lip_blur), lip_blur


def mask_pyramid(mask: np.ndarray, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """uint8 grid mask -> one ``[1, h*w]`` tensor in [0, 1] per latent level (PIL bilinear resize)."""
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))
    levels = []
    for level_h, level_w in mask_level_sizes(height, width):
        resized = np.asarray(image.resize((level_w, level_h), Image.BILINEAR), dtype=np.float32) / 255.0
        levels.append(torch.from_numpy(resized).view(1, -1))
    return tuple(levels)


def face_region_image(mask: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Frame-resolution 0/255 face rectangle -> [3, H, W] in [0, 1] (PIL bilinear, as the official)."""
    resized = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).resize((width, height), Image.BILINEAR)
    region = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0)
    return region.unsqueeze(0).repeat(3, 1, 1)


def build_face_masks(
    frame_h: int,
    frame_w: int,
    face_box: np.ndarray,
    lip_box: np.ndarray,
    height: int,
    width: int,
    face_expand_ratio: float = 1.2,
) -> FaceMasks:
    """All mask inputs for a frame of (frame_h, frame_w) source pixels that is resized to (height, width).

    ``face_box``/``lip_box`` are the unexpanded (x1, y1, x2, y2) boxes in frame pixels.
    """
    if face_expand_ratio <= 0:
        raise InputError(f"face_expand_ratio must be positive (got {face_expand_ratio}); the default is 1.2.")
    grid_h, grid_w = mask_level_sizes(height, width)[0]
    face_rect = box_mask(expand_region(face_box, frame_w, frame_h, face_expand_ratio), frame_h, frame_w)
    lip_rect = box_mask(expand_region(lip_box, frame_w, frame_h, LIP_EXPAND_RATIO), frame_h, frame_w)
    face_blur = blur_on_grid(face_rect, grid_h, grid_w, FACE_BLUR_KERNEL)
    lip_blur = blur_on_grid(lip_rect, grid_h, grid_w, LIP_BLUR_KERNEL)
    full, face, lip = separate_masks(face_blur, lip_blur)
    return FaceMasks(
        face_region=face_region_image(face_rect, height, width),
        full=mask_pyramid(full, height, width),
        face=mask_pyramid(face, height, width),
        lip=mask_pyramid(lip, height, width),
    )
