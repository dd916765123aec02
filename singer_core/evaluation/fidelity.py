"""PSNR and SSIM between a generated video and its reference, frame by frame.

Convention (the one ``skimage.metrics`` uses with the arguments below, checked in tests):

* frames are RGB uint8; frame ``i`` of the generated video is compared with frame ``i`` of the reference,
  over the shorter of the two lengths; a reference of another size is resized to the generated size
  (``cv2.INTER_AREA``) first;
* PSNR = ``10 log10(255^2 / MSE)`` with the MSE over all pixels and the three channels of the frame
  (``peak_signal_noise_ratio(ref, gen, data_range=255)``); identical frames give ``inf``;
* SSIM = ``structural_similarity(ref, gen, data_range=255, channel_axis=-1)``: each RGB channel on its
  own, 7x7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance (49/48), the SSIM map averaged over
  the window centres at least 3 pixels from the border, then the three channels averaged;
* the video's value is the mean of its per-frame values.

PSNR runs batched in torch; SSIM calls scikit-image on the CPU and a batched float64 torch version of the
same computation on a GPU (equal to ~1e-12, tested).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

DATA_RANGE = 255.0
SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03
FRAME_BATCH = 16


def _as_tensor(frames: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [T, 3, H, W] float64."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).double()


def psnr_frames(generated: np.ndarray, reference: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Per-frame PSNR (dB) of two [T, H, W, 3] uint8 arrays."""
    gen, ref = _as_tensor(generated, device), _as_tensor(reference, device)
    mse = (gen - ref).pow(2).flatten(1).mean(dim=1)
    with np.errstate(divide="ignore"):
        return (10 * torch.log10(DATA_RANGE**2 / mse)).cpu().numpy()


def ssim_frames(generated: np.ndarray, reference: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Per-frame SSIM of two [T, H, W, 3] uint8 arrays (mean of the three channels' mean SSIM).

    On the CPU scikit-image's own function runs frame by frame (measured faster there than batched float64
    torch, which is memory-bound); on a GPU the batched torch version (tested equal to it) runs.
    """
    if torch.device(device).type == "cpu":
        from skimage.metrics import structural_similarity

        return np.array([structural_similarity(r, g, data_range=DATA_RANGE, channel_axis=-1)
                         for g, r in zip(generated, reference, strict=True)])
    return ssim_frames_torch(generated, reference, device)


def ssim_frames_torch(generated: np.ndarray, reference: np.ndarray, device: torch.device | str) -> np.ndarray:
    """The batched float64 torch SSIM (same convention and values as scikit-image's)."""
    x, y = _as_tensor(reference, device), _as_tensor(generated, device)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels.")

    # Window means of x, y, x^2, y^2, xy in one pass. Unpadded 7x7 window means are skimage's
    # uniform_filter values at the centres it keeps after its crop; windowed sums through unfold are
    # float64-exact to ~1e-13 here and much faster on CPU than a float64 avg_pool2d.
    w = SSIM_WINDOW
    maps = torch.stack([x, y, x * x, y * y, x * y])
    means = maps.unfold(-1, w, 1).sum(-1).unfold(-2, w, 1).sum(-1) / (w * w)
    ux, uy, uxx, uyy, uxy = means
    count = w**2
    cov_norm = count / (count - 1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return ssim_map.mean(dim=(2, 3)).mean(dim=1).cpu().numpy()


def match_size(reference: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize reference frames to the generated size (area interpolation) when they differ."""
    if reference.shape[1:3] == (height, width):
        return reference
    import cv2

    return np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in reference])


def paired_batches(
    generated: Iterable[np.ndarray], reference: Iterable[np.ndarray], batch: int = FRAME_BATCH
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Aligned [B, H, W, 3] batches of (generated, reference) frames, stopping at the shorter video."""
    gen_buffer, ref_buffer = [], []
    for gen, ref in zip(generated, reference, strict=False):
        gen_buffer.append(gen)
        ref_buffer.append(ref)
        if len(gen_buffer) == batch:
            yield _batch(gen_buffer, ref_buffer)
            gen_buffer, ref_buffer = [], []
    if gen_buffer:
        yield _batch(gen_buffer, ref_buffer)


def _batch(gen_buffer: list[np.ndarray], ref_buffer: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    gen = np.stack(gen_buffer)
    return gen, match_size(np.stack(ref_buffer), gen.shape[1], gen.shape[2])


def psnr_ssim(
    generated: Iterable[np.ndarray],
    reference: Iterable[np.ndarray],
    device: torch.device | str = "cpu",
    metrics: tuple[str, ...] = ("psnr", "ssim"),
) -> dict[str, float]:
    """Mean PSNR and/or SSIM (``metrics``) over the aligned frames of two frame streams, plus the number
    of frames compared."""
    functions = {"psnr": psnr_frames, "ssim": ssim_frames}
    values: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    compared = 0
    for gen, ref in paired_batches(generated, reference):
        compared += len(gen)
        for name in metrics:
            values[name].append(functions[name](gen, ref, device))
    if not compared:
        raise ValueError("no frames to compare")
    return {**{name: float(np.mean(np.concatenate(v))) for name, v in values.items()},
            "frames_compared": float(compared)}
