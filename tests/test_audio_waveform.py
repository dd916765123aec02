"""Waveform preparation: decode, int16 range, downmix, our sinc resampler vs scipy's polyphase reference."""

from __future__ import annotations

import math
import wave

import numpy as np
import pytest
import scipy.signal as ss
import torch

from singer_core.audio.waveform import (
    as_channels_first,
    load_waveform,
    prepare_waveform,
    read_audio_file,
    resample,
    to_unit_range,
)
from singer_core.errors import InputError
from tests.conftest import DATA


def _sum_of_sines(rate: int, count: int, top_hz: float, seed: int = 0):
    """A band-limited test signal known in continuous time: (samples at ``rate``, exact samples at 16 kHz)."""
    rng = np.random.default_rng(seed)
    freqs, phases = rng.uniform(20, top_hz, 40), rng.uniform(0, 2 * np.pi, 40)

    def at(times: np.ndarray) -> np.ndarray:
        return 0.05 * np.sin(2 * np.pi * freqs[None] * times[:, None] + phases[None]).sum(1)

    return at(np.arange(count) / rate), at(np.arange(math.ceil(count * 16000 / rate)) / 16000)


def _relative_rms(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    core = slice(800, n - 800)  # edges depend on each filter's zero padding
    return float(np.sqrt(np.mean((a[core] - b[core]) ** 2) / np.mean(b[core] ** 2)))


def _scipy_reference(x: np.ndarray, orig: int) -> np.ndarray:
    g = math.gcd(orig, 16000)
    return ss.resample_poly(x, 16000 // g, orig // g)


@pytest.mark.parametrize("orig", [8000, 22050, 44100, 48000])
def test_resampler_is_exact_in_the_passband_and_agrees_with_scipy(orig):
    """Content up to 0.7x the lower Nyquist: ours is exact to 1e-5 (scipy's default filter: ~1e-3 ripple)."""
    x, truth = _sum_of_sines(orig, orig, 0.7 * min(orig, 16000) / 2)
    ours = resample(torch.from_numpy(x).float(), orig, 16000).double().numpy()
    assert len(ours) == len(truth)
    assert _relative_rms(ours, truth) < 1e-5
    assert _relative_rms(ours, _scipy_reference(x, orig)) < 2e-3


@pytest.mark.parametrize("orig", [8000, 22050, 44100, 48000])
def test_resampler_near_nyquist_is_as_good_as_scipy(orig):
    """Content up to 0.85x Nyquist (inside both filters' transition band): error within 1.5x of scipy's."""
    x, truth = _sum_of_sines(orig, orig, 0.85 * min(orig, 16000) / 2, seed=1)
    ours = resample(torch.from_numpy(x).float(), orig, 16000).double().numpy()
    assert _relative_rms(ours, truth) < 1.5 * _relative_rms(_scipy_reference(x, orig), truth)


@pytest.mark.parametrize("orig", [8000, 44100, 48000])
def test_resampled_sine_is_exact(orig):
    freq = 440.0 if orig == 8000 else 3000.0
    t = np.arange(orig * 2) / orig
    y = resample(torch.from_numpy(np.sin(2 * np.pi * freq * t)).float(), orig, 16000).numpy()
    expected = np.sin(2 * np.pi * freq * np.arange(len(y)) / 16000)
    assert np.abs(y[1000:-1000] - expected[1000:-1000]).max() < 1e-5


def test_downsampling_removes_content_above_the_new_nyquist():
    t = np.arange(48000) / 48000
    tone = np.sin(2 * np.pi * 12000 * t)  # above 8 kHz: must not alias into the 16 kHz result
    y = resample(torch.from_numpy(tone).float(), 48000, 16000).numpy()
    assert np.sqrt(np.mean(y[500:-500] ** 2)) < 1e-3


def test_real_song_44k_roundtrip_matches_original():
    mono16 = load_waveform(DATA / "0001.wav")
    up = resample(mono16, 16000, 44100)
    back = resample(up, 44100, 16000)[: mono16.shape[0]]
    assert back.shape == mono16.shape
    # only the 7.56-8 kHz band (outside the 0.945 roll-off) may change
    x = mono16.double().numpy()
    low = ss.filtfilt(*ss.butter(8, 7000, fs=16000), x)
    low_back = ss.filtfilt(*ss.butter(8, 7000, fs=16000), back.double().numpy())
    assert _relative_rms(low_back, low) < 2e-3


def test_int16_range_is_detected_and_scaled():
    x = torch.tensor([[0.0, 16384.0, -32768.0, 100.0]])
    assert torch.allclose(to_unit_range(x), x / 32768.0)
    pcm = torch.tensor([[0, 16384, -32768]], dtype=torch.int16)
    assert torch.allclose(to_unit_range(pcm), torch.tensor([[0.0, 0.5, -1.0]]))
    pcm32 = torch.tensor([[2**30]], dtype=torch.int32)
    assert torch.allclose(to_unit_range(pcm32), torch.tensor([[0.5]]))
    unit = torch.tensor([[0.5, -1.05]])  # ordinary float audio (a little overshoot) is left alone
    assert torch.equal(to_unit_range(unit), unit)


def test_int16_input_gives_the_same_features_input_as_float():
    stereo, rate = read_audio_file(DATA / "0001.wav")
    as_int16 = torch.round(stereo * 32768).to(torch.int16)
    assert torch.allclose(prepare_waveform(as_int16, rate), prepare_waveform(stereo, rate), atol=1e-7)
    assert torch.allclose(prepare_waveform(as_int16.float(), rate), prepare_waveform(stereo, rate), atol=1e-7)


def test_stereo_downmix_is_channel_mean_and_comfy_batch_is_accepted():
    stereo, rate = read_audio_file(DATA / "0001.wav")
    assert stereo.shape == (2, 32200) and rate == 16000
    mono = prepare_waveform(stereo[None], rate)  # ComfyUI AUDIO waveform [B, C, T]
    assert torch.equal(mono, stereo.mean(0))


def test_bad_shapes_and_values_are_input_errors():
    with pytest.raises(InputError, match="batch of 2"):
        as_channels_first(torch.zeros(2, 1, 100))
    with pytest.raises(InputError, match="channels"):
        as_channels_first(torch.zeros(100, 2))
    with pytest.raises(InputError, match="NaN"):
        to_unit_range(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(InputError, match="sample rate"):
        prepare_waveform(torch.zeros(1, 100), 0)


def test_reads_wav_written_by_the_stdlib(tmp_path):
    rate = 8000
    samples = (np.sin(2 * np.pi * 200 * np.arange(rate) / rate) * 20000).astype(np.int16)
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())
    waveform, got_rate = read_audio_file(path)
    assert got_rate == rate and waveform.shape == (1, rate)
    assert torch.allclose(waveform[0], torch.from_numpy(samples.astype(np.float32) / 32768.0))
    assert load_waveform(path).shape == (16000,)


def test_missing_or_broken_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_audio_file(tmp_path / "nope.wav")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(InputError):
        read_audio_file(broken)
