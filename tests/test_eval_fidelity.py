"""PSNR/SSIM against scikit-image's functions on the stated convention, and the evaluate() plumbing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from singer_core.errors import InputError
from singer_core.evaluation import evaluate, pair_videos
from singer_core.evaluation.fidelity import psnr_frames, psnr_ssim, ssim_frames, ssim_frames_torch
from singer_core.video_io import write_video


def _frames(seed: int, t: int = 5, h: int = 40, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
    return base


def test_psnr_ssim_match_skimage_per_frame():
    ref = _frames(0)
    noise = np.random.default_rng(1).normal(0, 20, ref.shape)
    gen = np.clip(ref + noise, 0, 255).astype(np.uint8)
    psnr = psnr_frames(gen, ref)
    ssim = ssim_frames_torch(gen, ref, "cpu")  # the GPU code path, run on the CPU
    np.testing.assert_allclose(ssim_frames(gen, ref), ssim, atol=1e-10)
    for i in range(len(ref)):
        assert psnr[i] == pytest.approx(peak_signal_noise_ratio(ref[i], gen[i], data_range=255), abs=1e-10)
        expected = structural_similarity(ref[i], gen[i], data_range=255, channel_axis=-1)
        assert ssim[i] == pytest.approx(expected, abs=1e-10)


def test_ssim_structured_images_and_identity():
    y, x = np.mgrid[0:64, 0:64]
    ref = np.stack([(x * 4) % 256, (y * 3) % 256, ((x + y) * 2) % 256], -1).astype(np.uint8)[None]
    gen = np.roll(ref, 2, axis=2)
    assert ssim_frames_torch(gen, ref, "cpu")[0] == pytest.approx(
        structural_similarity(ref[0], gen[0], data_range=255, channel_axis=-1), abs=1e-10)
    assert ssim_frames(ref, ref)[0] == pytest.approx(1.0)
    assert np.isinf(psnr_frames(ref, ref)[0])


def test_psnr_ssim_streams_stop_at_shorter_and_resize():
    ref = _frames(2, t=7, h=32, w=32)
    gen = _frames(3, t=5, h=32, w=32)
    values = psnr_ssim(iter(gen), iter(ref))
    assert values["frames_compared"] == 5
    assert values["psnr"] == pytest.approx(np.mean([peak_signal_noise_ratio(r, g, data_range=255)
                                                    for r, g in zip(ref[:5], gen, strict=True)]))
    big = np.repeat(np.repeat(ref, 2, axis=1), 2, axis=2)  # a 2x reference is area-resized back exactly
    assert psnr_ssim(iter(gen), iter(big))["psnr"] == pytest.approx(values["psnr"])


def _write(path, frames):
    write_video(path, torch.from_numpy(frames).float() / 255, fps=25)


def test_evaluate_report_files(tmp_path):
    gen_dir, ref_dir = tmp_path / "gen", tmp_path / "ref"
    clip = np.clip(_frames(4, t=4, h=32, w=32).astype(float), 30, 220).astype(np.uint8)
    _write(ref_dir / "a.mp4", clip)
    _write(gen_dir / "a.mp4", clip)
    _write(ref_dir / "b.mp4", clip)
    _write(gen_dir / "b.mp4", 255 - clip)
    report = evaluate(gen_dir, ref_dir, metrics="psnr,ssim", out=tmp_path / "r.json", progress=False)
    assert [r.name for r in report.rows] == ["a", "b"]
    assert report.columns == ["psnr", "ssim"]
    a, b = report.rows[0].values, report.rows[1].values
    assert a["psnr"] > b["psnr"] and a["ssim"] > b["ssim"]
    assert report.means["psnr"] == pytest.approx((a["psnr"] + b["psnr"]) / 2)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["means"]["ssim"] == pytest.approx(report.means["ssim"])
    assert (tmp_path / "r.md").read_text().startswith("| video | psnr | ssim |")
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == "video,psnr,ssim"


def test_pairing_errors(tmp_path):
    gen_dir, ref_dir = tmp_path / "gen", tmp_path / "ref"
    clip = _frames(5, t=2, h=16, w=16)
    _write(gen_dir / "x.mp4", clip)
    _write(ref_dir / "y.mp4", clip)
    with pytest.raises(InputError, match="No reference video for x"):
        pair_videos(gen_dir, ref_dir)
    with pytest.raises(InputError, match="does not exist"):
        pair_videos(tmp_path / "nope")
    # A metric needing a reference is skipped (with the reason) when none is given.
    with pytest.raises(InputError, match="needs reference videos"):
        evaluate(gen_dir, metrics=["psnr"], progress=False)
    with pytest.raises(InputError, match="Unknown metric"):
        evaluate(gen_dir, metrics=["nonsense"], progress=False)


def test_cli_evaluate(tmp_path, capsys):
    from singer_core.__main__ import main

    gen_dir = tmp_path / "gen"
    clip = _frames(6, t=3, h=16, w=16)
    _write(gen_dir / "x.mp4", clip)
    _write(tmp_path / "ref" / "x.mp4", clip)
    code = main(["evaluate", "--generated", str(gen_dir), "--reference", str(tmp_path / "ref"),
                 "--metrics", "psnr", "--out", str(tmp_path / "out" / "r.json")])
    assert code == 0
    assert json.loads((tmp_path / "out" / "r.json").read_text())["columns"] == ["psnr"]
    assert main(["evaluate", "--generated", str(tmp_path / "missing"), "--out", str(tmp_path / "r.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_evaluate_resumes_from_the_parts_of_a_previous_run(tmp_path, monkeypatch):
    import dataclasses
    import os

    from singer_core.evaluation import METRICS

    clip = _frames(7, t=3, h=32, w=32)
    for name in ("a", "b"):
        _write(tmp_path / "gen" / f"{name}.mp4", clip)
    first = evaluate(tmp_path / "gen", metrics="cpbd", out=tmp_path / "r.json", progress=False)
    assert sorted(p.name for p in (tmp_path / "r.parts").iterdir()) == ["a.json", "b.json"]
    calls = []
    original = METRICS["cpbd"].compute
    counting = dataclasses.replace(METRICS["cpbd"], compute=lambda ctx: calls.append(ctx.pair.name) or original(ctx))
    monkeypatch.setitem(METRICS, "cpbd", counting)
    again = evaluate(tmp_path / "gen", metrics="cpbd", out=tmp_path / "r.json", progress=False)
    assert calls == [] and again.means == first.means
    stat = (tmp_path / "gen" / "b.mp4").stat()
    os.utime(tmp_path / "gen" / "b.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # b changed
    evaluate(tmp_path / "gen", metrics="cpbd", out=tmp_path / "r.json", progress=False)
    assert calls == ["b"]
    evaluate(tmp_path / "gen", metrics="cpbd", out=tmp_path / "r.json", progress=False, fresh=True)
    assert calls == ["b", "a", "b"]
