"""CPBD, the cumulative probability of blur detection (Narvekar & Karam, IEEE TIP 2011), vectorised.

Follows the ``cpbd`` PyPI package (1.0.7, a port of the authors' MATLAB code that talking-head papers
use) step for step, including its quirks, so the values are equal (tests: 1e-6 on the fixtures made by
tools/make_metric_fixtures_cpbd.py with the package itself):

* the image is a 2-D grey image in 0..255 as float64; video frames are converted with
  ``cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)`` (what ``cv2.imread(path, 0)`` gives for a saved frame);
* edge blocks: 64x64 blocks (only whole blocks) with more than 0.2 % of pixels on a Canny edge
  (``skimage.feature.canny`` with its defaults, applied to the 0..255 float image);
* edge widths (Marziliano): at thinned Sobel edges (Octave's ``edge`` thresholding) whose gradient
  angle rounds to 0 or +-180 degrees, the distance between the intensity extrema left and right of the
  pixel along the row, each side capped at 101 px; other angles get no width. When ``np.gradient``'s
  x-component is 0 the angle is 0 (the package's reading, which also tests ``gy == pi/2``);
* per block, P(blur) = 1 - exp(-(w / w_JNB)^3.6) with w_JNB = 5 if the block's int(max - min) <= 50
  else 3; each probability is put in bucket round(100 P); CPBD = share of edges with bucket < 64
  (P <= 0.635), 0 when there is no edge.

The per-pixel Python loops of the package become run-length counts along rows (numpy), which makes a
512x512 frame take milliseconds instead of seconds.
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.002
BETA = 3.6
BLOCK = 64
MAX_MARGIN = 100
SHARP_BUCKETS = 64
# Sobel kernel of the package (skimage's HSOBEL_WEIGHTS normalised to sum(|h|) = 1), transposed.
_SOBEL_X = (np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64) / 8.0).T


def to_gray(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 frame -> uint8 grey (OpenCV's BT.601 weights, as ``cv2.imread(path, 0)``)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _sobel_edges(image: np.ndarray) -> np.ndarray:
    """Thinned Sobel edges, Octave style (the package's ``octave.sobel``)."""
    from scipy.ndimage import convolve

    strength = np.square(convolve(image, _SOBEL_X))
    threshold = 2 * np.sqrt(np.mean(strength))
    strength[strength <= threshold] = 0
    padded_x = np.pad(strength, ((0, 0), (1, 1)))
    padded_y = np.pad(strength, ((1, 1), (0, 0)))
    across_x = (strength > padded_x[:, :-2]) & (strength > padded_x[:, 2:])
    across_y = (strength > padded_y[:-2, :]) & (strength > padded_y[2:, :])
    return across_x | across_y


def _run_left(condition: np.ndarray) -> np.ndarray:
    """``run[r, c]``: how many consecutive True values end at column c, counting leftwards."""
    columns = np.arange(condition.shape[1])
    last_false = np.maximum.accumulate(np.where(condition, -1, columns), axis=1)
    return columns - last_false


def _run_right(condition: np.ndarray) -> np.ndarray:
    """``run[r, c]``: how many consecutive True values start at column c, counting rightwards."""
    return _run_left(condition[:, ::-1])[:, ::-1]


def _edge_widths(edges: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Marziliano edge widths at edge pixels (0 elsewhere), as ``cpbd.compute.marziliano_method``."""
    gradient_y, gradient_x = np.gradient(image)
    with np.errstate(invalid="ignore"):
        angles = np.where(gradient_x != 0, np.arctan2(gradient_y, gradient_x) * (180 / np.pi),
                          np.where(gradient_y == np.pi / 2, 90.0, 0.0))
    widths = np.zeros(image.shape)
    if not np.any(angles):
        return widths
    quantized = 45 * np.round(angles / 45)
    # step[r, c] = image[r, c] - image[r, c + 1]; the walk from an edge pixel continues while the
    # intensity keeps falling (angle 180) or rising (angle 0) away from it.
    step = image[:, :-1] - image[:, 1:]
    false_col = np.zeros((image.shape[0], 1), dtype=bool)
    # Left walk: inner = c, outer = c - 1; continues while image[c-1] - image[c] > 0 (180) / < 0 (0).
    left_180 = _run_left(np.hstack([false_col, step > 0]))
    left_0 = _run_left(np.hstack([false_col, step < 0]))
    # Right walk: inner = c, outer = c + 1; continues while image[c+1] - image[c] < 0 (180) / > 0 (0).
    right_180 = _run_right(np.hstack([step > 0, false_col]))
    right_0 = _run_right(np.hstack([step < 0, false_col]))
    inner = np.zeros(image.shape, dtype=bool)
    inner[1:-1, 1:-1] = True
    selected = edges & inner
    rows, cols = np.nonzero(selected & ((quantized == 180) | (quantized == -180)))
    widths[rows, cols] = (np.minimum(left_180[rows, cols - 1], MAX_MARGIN) + 1
                          + np.minimum(right_180[rows, cols + 1], MAX_MARGIN) + 1)
    rows, cols = np.nonzero(selected & (quantized == 0))
    widths[rows, cols] = (np.minimum(left_0[rows, cols - 1], MAX_MARGIN) + 1
                          + np.minimum(right_0[rows, cols + 1], MAX_MARGIN) + 1)
    return widths


def cpbd(gray: np.ndarray) -> float:
    """CPBD sharpness of a 2-D grey image (uint8 or float in 0..255); higher is sharper."""
    from skimage.feature import canny

    image = np.asarray(gray).astype(np.float64)
    if image.ndim != 2:
        raise ValueError(f"CPBD needs a 2-D grey image (got shape {image.shape}).")
    canny_edges = canny(image)
    widths = _edge_widths(_sobel_edges(image), image)
    blocks_y, blocks_x = image.shape[0] // BLOCK, image.shape[1] // BLOCK
    if blocks_y == 0 or blocks_x == 0:
        return 0.0

    def tiles(a: np.ndarray) -> np.ndarray:
        a = a[: blocks_y * BLOCK, : blocks_x * BLOCK]
        return a.reshape(blocks_y, BLOCK, blocks_x, BLOCK).swapaxes(1, 2).reshape(blocks_y * blocks_x, BLOCK * BLOCK)

    edge_counts = np.count_nonzero(tiles(canny_edges), axis=1)
    is_edge_block = edge_counts > BLOCK * BLOCK * THRESHOLD
    image_tiles, width_tiles = tiles(image), tiles(widths)
    contrast = (image_tiles.max(axis=1) - image_tiles.min(axis=1)).astype(np.int64)
    jnb = np.where(contrast <= 50, 5.0, 3.0)
    block_widths = width_tiles[is_edge_block]
    mask = block_widths != 0
    if not mask.any():
        return 0.0
    ratio = block_widths / jnb[is_edge_block][:, None]
    probability = 1 - np.exp(-(np.abs(ratio[mask]) ** BETA))
    buckets = np.round(probability * 100).astype(np.int64)
    return float(np.count_nonzero(buckets < SHARP_BUCKETS) / buckets.size)


def video_cpbd(frames) -> float:
    """Mean CPBD over the frames of a video (RGB uint8 frames, converted to grey)."""
    values = [cpbd(to_gray(frame)) for frame in frames]
    if not values:
        raise ValueError("no frames")
    return float(np.mean(values))
