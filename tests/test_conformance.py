"""The conformance runner CLI passes on every shared fixture case and fails on a perturbed one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from singer_core.conformance.__main__ import case_kind
from tests.conftest import FIXTURES

REPO = Path(__file__).resolve().parent.parent
MODULE_CASES = ["dwt", "msm", "sfm", "small_modules", "audio_features"]
UNET_CASES = ["denoise_step", "pipeline"]


def _run(*cases: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "singer_core.conformance", *map(str, cases)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "max abs error" in line]


def _assert_all_pass(result: subprocess.CompletedProcess, names: list[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _error_lines(result.stdout)
    assert lines and all(line.strip().startswith("ok") for line in lines), result.stdout
    for name in names:
        assert f"{name}.json (" in result.stdout, f"no report for {name}"
    assert "all cases pass" in result.stdout


def test_runner_passes_on_module_cases():
    _assert_all_pass(_run(*(FIXTURES / f"{name}.json" for name in MODULE_CASES)), MODULE_CASES)


@pytest.mark.slow
@pytest.mark.parametrize("name", UNET_CASES)
def test_runner_passes_on_unet_case(name):
    _assert_all_pass(_run(FIXTURES / f"{name}.json"), [name])


def test_case_kinds_detected_from_content():
    kinds = {name: case_kind(json.loads((FIXTURES / f"{name}.json").read_text())) for name in MODULE_CASES + UNET_CASES}
    assert kinds == {
        "dwt": "dwt",
        "msm": "msm",
        "sfm": "sfm",
        "small_modules": "small_modules",
        "audio_features": "audio_features",
        "denoise_step": "denoise_step",
        "pipeline": "pipeline",
    }


def _copy_case(tmp_path: Path, name: str, files: list[str]) -> Path:
    for file in [f"{name}.json", f"{name}.io.safetensors", *files]:
        shutil.copy(FIXTURES / file, tmp_path / file)
    return tmp_path / f"{name}.json"


def _perturb(path: Path, key: str, amount: float) -> None:
    tensors = load_file(str(path))
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] += amount
    save_file(tensors, str(path))


def test_runner_reports_missing_files(tmp_path):
    shutil.copy(FIXTURES / "sfm.json", tmp_path / "sfm.json")
    result = _run(tmp_path / "sfm.json")
    assert result.returncode == 1 and "a file is missing" in result.stdout and "sfm.io.safetensors" in result.stdout


@pytest.mark.parametrize(("amount", "expect_rc"), [(1e-3, 1), (1e-7, 0)])
def test_runner_fails_beyond_tolerance(tmp_path, amount, expect_rc):
    case = _copy_case(tmp_path, "msm", ["msm.weights.safetensors"])
    _perturb(tmp_path / "msm.io.safetensors", "output", amount)
    result = _run(case)
    assert result.returncode == expect_rc, result.stdout + result.stderr
    if expect_rc:
        assert any(line.strip().startswith("FAIL output:") for line in _error_lines(result.stdout)), result.stdout



REAL_RATE_CASES = ["audio_48k", "audio_44k"]
# Our resampled waveform against librosa's, stored on another machine: the same soxr_hq calls, so 0.0 where soxr
# takes the same code path (its SSE one on x86 CPUs; ARM CPUs take its NEON one); its scalar path (SOXR_USE_SIMD=0)
# moves samples by 8.9e-8. Another resampler is 7e-3 off (docs/audio_models.md).
WAVEFORM_ATOL = 1e-6


def test_runner_passes_on_real_recordings_at_song_rates():
    """48 kHz (shared fixture) and 44.1 kHz (tools/make_audio_case.py) stereo recordings, replayed at 1e-5."""
    cases = [FIXTURES / name / "audio_features.json" for name in REAL_RATE_CASES]
    result = _run(*cases)
    _assert_all_pass(result, [f"{name}/audio_features" for name in REAL_RATE_CASES])
    errors = re.findall(r"waveform\.librosa_mono_16k: max abs error (\S+) ", result.stdout)
    assert len(errors) == len(REAL_RATE_CASES) and all(float(e) <= WAVEFORM_ATOL for e in errors), errors


def test_real_rate_case_fails_with_another_resampler(monkeypatch):
    """The 48 kHz case discriminates resamplers: scipy's polyphase filter instead of soxr_hq is far off."""
    from scipy.signal import resample_poly

    from singer_core.audio.waveform import read_mono_file
    from singer_core.conformance import audio as conformance_audio
    from singer_core.conformance.audio import run_audio_features

    def scipy_load(path):
        mono, rate = read_mono_file(path)
        return torch.from_numpy(resample_poly(mono.double().numpy(), 16, rate // 1000).astype(np.float32))

    monkeypatch.setattr(conformance_audio, "load_waveform", scipy_load)
    case_path = FIXTURES / "audio_48k" / "audio_features.json"
    results = run_audio_features(json.loads(case_path.read_text()), case_path)
    worst = {item.name: item.max_abs_error for item in results}
    assert worst["waveform.librosa_mono_16k"] > 1e-3 and worst["clip16.audio_emb"] > 1e-3
