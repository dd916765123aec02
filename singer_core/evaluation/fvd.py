"""FVD, the Frechet Video Distance, with the StyleGAN-V protocol (Skorokhodov et al. 2022,
``src/metrics/frechet_video_distance.py`` + ``metric_utils.py``), which talking-head papers follow.

* detector: ``i3d_torchscript.pt`` (the TF-Hub Kinetics-400 I3D of the original FVD code, exported to
  TorchScript by the StyleGAN-ADA/V authors); the user puts it at ``MODELS/evaluation/i3d_torchscript.pt``;
* input: clips of 16 consecutive RGB frames as uint8 ``[B, 3, 16, H, W]``, called with
  ``rescale=True, resize=True, return_features=True``: the network itself maps 0..255 to [-1, 1] and
  resizes to 224x224, and returns the 400 logits before the softmax;
* clips: every non-overlapping 16-frame clip of every video, from frame 0 (StyleGAN-V takes one clip per
  video; a handful of long talking-head videos needs all of them for a usable covariance);
* statistics: mean and covariance of the features in float64, the covariance normalised by N (not N-1),
  as ``FeatureStats.get_mean_cov``;
* distance: ``|mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_g S_r)^(1/2))`` in float64. The trace of the matrix
  square root is computed from the eigenvalues of the symmetric ``S_r^(1/2) S_g S_r^(1/2)`` (same value as
  the reference's ``scipy.linalg.sqrtm`` of ``S_g S_r`` - tested - without its complex round-off).

Loading: a TorchScript archive is not a Python pickle. ``torch.jit.load`` reads it with TorchScript's own
deserialiser, which rebuilds only TorchScript types and tensors (no Python import or callable from the file),
and the forward runs on the TorchScript interpreter, which has no access to Python (no ``eval``, ``os`` or
``subprocess``); the only code it runs is the archive's TorchScript on torch operators. That is why FVD uses
``torch.jit.load`` rather than re-implementing the exported network, whose exact layer names are only in
that archive. Use the file from the StyleGAN-V link (see docs/evaluation.md) and nothing else under that name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from singer_core.errors import CheckpointError

I3D_FILE = "evaluation/i3d_torchscript.pt"
CLIP_FRAMES = 16
FEATURES = 400
CLIPS_PER_BATCH = 4


def load_i3d(path: str | Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """Load the TorchScript I3D detector (see the module docstring for why ``torch.jit.load``)."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch >= 2.9 flags TorchScript as deprecated; the file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location=device).eval()
    except Exception as error:  # noqa: BLE001 - corrupt or non-TorchScript file
        raise CheckpointError(f"Cannot load '{path}' as the TorchScript I3D of StyleGAN-V ({error}). Download "
                              "i3d_torchscript.pt again from the link in docs/evaluation.md.") from error


def clips(frames: Iterable[np.ndarray], length: int = CLIP_FRAMES) -> Iterator[np.ndarray]:
    """Non-overlapping [length, H, W, 3] clips from frame 0; a shorter tail is dropped."""
    buffer: list[np.ndarray] = []
    for frame in frames:
        buffer.append(frame)
        if len(buffer) == length:
            yield np.stack(buffer)
            buffer = []


@torch.no_grad()
def i3d_features(detector, frames: Iterable[np.ndarray], device: torch.device | str = "cpu") -> np.ndarray:
    """[clips, 400] float64 I3D logits of a video's 16-frame clips (empty when the video is shorter)."""
    out, batch = [], []

    def flush():
        x = torch.from_numpy(np.stack(batch)).to(device).permute(0, 4, 1, 2, 3).contiguous()  # [B, 3, T, H, W]
        out.append(detector(x, rescale=True, resize=True, return_features=True).double().cpu().numpy())
        batch.clear()

    for clip in clips(frames):
        batch.append(clip)
        if len(batch) == CLIPS_PER_BATCH:
            flush()
    if batch:
        flush()
    return np.concatenate(out) if out else np.zeros((0, FEATURES))


def mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance normalised by N, in float64 (StyleGAN-V's FeatureStats)."""
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    return mean, x.T @ x / len(x) - np.outer(mean, mean)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) in float64."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root = _sqrt_psd(sigma2)
    product = root @ sigma1 @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    return float(np.square(mu1 - mu2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def fvd(generated: np.ndarray, reference: np.ndarray) -> float:
    """FVD between two [N, 400] feature sets."""
    if len(generated) < 2 or len(reference) < 2:
        raise ValueError(f"FVD needs at least two 16-frame clips on each side (got {len(generated)} generated, "
                         f"{len(reference)} reference); use longer or more videos.")
    return frechet_distance(*mean_cov(generated), *mean_cov(reference))
