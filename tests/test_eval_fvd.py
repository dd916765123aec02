"""FVD: the Frechet distance against the reference formula (scipy sqrtm, as StyleGAN-V), the statistics
convention, and the clip/feature pipeline with a scripted stand-in for the I3D TorchScript file."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from singer_core.errors import CheckpointError
from singer_core.evaluation import evaluate
from singer_core.evaluation.fvd import clips, frechet_distance, fvd, i3d_features, load_i3d, mean_cov
from singer_core.video_io import write_video

# torch >= 2.9 marks TorchScript deprecated; the stand-in must be TorchScript because the real file is.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def _reference_fvd(mu_gen, sigma_gen, mu_real, sigma_real) -> float:
    """StyleGAN-V's formula, verbatim in meaning: scipy sqrtm of the product, real part."""
    m = np.square(mu_gen - mu_real).sum()
    s = scipy.linalg.sqrtm(np.dot(sigma_gen, sigma_real))
    return float(np.real(m + np.trace(sigma_gen + sigma_real - s * 2)))


@pytest.mark.parametrize("n,dim", [(200, 16), (60, 40), (12, 30)])  # full rank, and rank-deficient (N < D)
def test_frechet_distance_matches_scipy_sqrtm_formula(n, dim):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) * 0.3
    b = rng.normal(size=(n + 7, dim)) * 1.2 + 0.5
    ours = frechet_distance(*mean_cov(a), *mean_cov(b))
    assert ours == pytest.approx(_reference_fvd(*mean_cov(a), *mean_cov(b)), rel=1e-6, abs=1e-8)
    assert frechet_distance(*mean_cov(a), *mean_cov(a)) == pytest.approx(0.0, abs=1e-6 * np.trace(mean_cov(a)[1]))


def test_mean_cov_is_normalised_by_n():
    x = np.random.default_rng(0).normal(size=(9, 4))
    mean, cov = mean_cov(x)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False, bias=True), atol=1e-12)
    np.testing.assert_allclose(mean, x.mean(axis=0))


class _StandIn(torch.nn.Module):
    """Scripted stand-in with the I3D file's call signature: uint8 [B, 3, T, H, W] -> [B, 400]."""

    def __init__(self):
        super().__init__()
        self.projection = torch.nn.Parameter(torch.randn(3 * 4 * 4, 400, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        y = x.float()
        if rescale:
            y = y / 127.5 - 1
        if resize:
            y = torch.nn.functional.interpolate(y, size=(y.shape[2], 224, 224), mode="trilinear", align_corners=False)
        pooled = torch.nn.functional.adaptive_avg_pool3d(y, (1, 4, 4)).flatten(1)
        logits = pooled @ self.projection
        return logits if return_features else logits.softmax(dim=1)


@pytest.fixture(scope="module")
def detector_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("i3d") / "i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(_StandIn()), str(path))
    return path


def _video(path, seed, frames=40, size=48):
    rng = np.random.default_rng(seed)
    clip = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    write_video(path, torch.from_numpy(clip).float() / 255, 25)


def test_clips_and_features(detector_file):
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(35)]
    got = list(clips(frames))
    assert [c.shape for c in got] == [(16, 8, 8, 3)] * 2 and got[1][0, 0, 0, 0] == 16
    detector = load_i3d(detector_file)
    features = i3d_features(detector, frames)
    assert features.shape == (2, 400) and features.dtype == np.float64
    expected = _StandIn()(torch.from_numpy(np.stack(got)).permute(0, 4, 1, 2, 3), True, True, True)
    np.testing.assert_allclose(features, expected.detach().double().numpy(), rtol=1e-5, atol=1e-5)
    assert i3d_features(detector, frames[:10]).shape == (0, 400)


def test_evaluate_fvd_set_level(detector_file, tmp_path):
    models = tmp_path / "models" / "evaluation"
    models.mkdir(parents=True)
    (models / "i3d_torchscript.pt").write_bytes(detector_file.read_bytes())
    for i in range(3):
        _video(tmp_path / "gen" / f"v{i}.mp4", seed=i)
        _video(tmp_path / "ref" / f"v{i}.mp4", seed=10 + i)
    report = evaluate(tmp_path / "gen", tmp_path / "ref", metrics="fvd", models=tmp_path / "models", progress=False)
    assert report.set_values["fvd_clips"] == 6  # 3 videos x 2 whole clips
    detector = load_i3d(detector_file)
    from singer_core.evaluation.media import iter_frames

    gen = np.concatenate([i3d_features(detector, iter_frames(tmp_path / "gen" / f"v{i}.mp4")) for i in range(3)])
    ref = np.concatenate([i3d_features(detector, iter_frames(tmp_path / "ref" / f"v{i}.mp4")) for i in range(3)])
    assert report.set_values["fvd"] == pytest.approx(fvd(gen, ref), rel=1e-9)
    resumed = [evaluate(tmp_path / "gen", tmp_path / "ref", metrics="fvd", models=tmp_path / "models", progress=False,
                        out=tmp_path / "r.json") for _ in range(2)]  # the second run reads the kept features
    assert resumed[1].set_values == resumed[0].set_values == report.set_values
    same = evaluate(tmp_path / "gen", tmp_path / "gen", metrics="fvd", models=tmp_path / "models", progress=False)
    assert abs(same.set_values["fvd"]) < 1e-6 * report.set_values["fvd"]


def test_load_i3d_refuses_non_torchscript(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "i3d.pt")
    with pytest.raises(CheckpointError, match="TorchScript I3D"):
        load_i3d(tmp_path / "i3d.pt")
