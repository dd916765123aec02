"""Waveform preparation: decode, int16 range, downmix, soxr resampling; compared with librosa.load itself."""

from __future__ import annotations

import math
import wave

import av
import numpy as np
import pytest
import torch

from singer_core.audio.waveform import (
    as_channels_first,
    downmix,
    load_waveform,
    prepare_waveform,
    read_audio_file,
    resample,
    to_unit_range,
)
from singer_core.errors import InputError
from tests.conftest import DATA

LIBROSA_RATES = [22050, 32000, 44100, 48000, 96000]
# ffmpeg's mp3 decoder (PyAV) and libsndfile's mpg123 (librosa) round differently; measured max 1.6e-6.
MP3_ATOL = 1e-5


def _write(path, rate: int, channels: int, codec: str, seconds: float = 1.0, seed: int = 0) -> None:
    """A song-like test file: tones low and high in the band plus noise, 16-bit, written with PyAV."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    sig = np.stack([
        0.3 * np.sin(2 * np.pi * (220 + 50 * c) * t) + 0.2 * np.sin(2 * np.pi * (3000 + 700 * c) * t)
        + 0.1 * np.sin(2 * np.pi * 0.45 * rate * t) + 0.05 * rng.standard_normal(t.size)
        for c in range(channels)
    ])
    pcm = (np.clip(sig, -1, 1) * 32767).astype(np.int16)
    layout = "mono" if channels == 1 else "stereo"
    planar = codec == "libmp3lame"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(pcm if planar else pcm.T.reshape(1, -1).copy(),
                                           format="s16p" if planar else "s16", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return pcm


def _librosa_load(path) -> np.ndarray:
    import librosa

    return librosa.load(str(path), sr=16000)[0]


FILE_CASES = [
    (rate, channels, ext, codec)
    for rate in LIBROSA_RATES
    for channels in (1, 2)
    for ext, codec in (("wav", "pcm_s16le"), ("flac", "flac"), ("mp3", "libmp3lame"))
    if not (ext == "mp3" and rate > 48000)  # MPEG audio has no 96 kHz mode
]


@pytest.mark.parametrize("rate, channels, ext, codec", FILE_CASES)
def test_file_path_equals_librosa_load(tmp_path, rate, channels, ext, codec):
    """load_waveform == librosa.load(sr=16000): bit for bit for wav/flac, within MP3_ATOL for mp3."""
    path = tmp_path / f"song_{rate}_{channels}.{ext}"
    _write(path, rate, channels, codec)
    ours, official = load_waveform(path).numpy(), _librosa_load(path)
    assert ours.dtype == np.float32 and ours.shape == official.shape
    error = float(np.abs(ours - official).max())
    assert error <= (MP3_ATOL if ext == "mp3" else 0.0), f"{path.name}: max abs error {error:.3e}"


@pytest.mark.parametrize("rate", [44100, 48000])
def test_comfy_audio_tensor_takes_the_same_path(tmp_path, rate):
    """A ComfyUI AUDIO dict (LoadAudio: int16 / 2**15, [1, C, T] at the file's rate) gives librosa's waveform."""
    path = tmp_path / "song.wav"
    pcm = _write(path, rate, 2, "pcm_s16le", seconds=0.7)
    comfy_waveform = (torch.from_numpy(pcm).float() / 2**15)[None]
    assert torch.equal(prepare_waveform(comfy_waveform, rate), torch.from_numpy(_librosa_load(path)))
    assert torch.equal(prepare_waveform(torch.from_numpy(pcm)[None], rate), load_waveform(path))


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT"])
def test_24_bit_and_float_files_equal_librosa_load(tmp_path, subtype):
    import soundfile

    x = np.random.default_rng(5).uniform(-0.9, 0.9, (44100, 2))
    path = tmp_path / ("song.flac" if subtype == "PCM_24" else "song.wav")
    soundfile.write(str(path), x, 44100, subtype=subtype)
    assert torch.equal(load_waveform(path), torch.from_numpy(_librosa_load(path)))


def test_resample_is_librosa_resample_including_length_fix():
    """Odd lengths: soxr's own output length differs from ceil(T * ratio); librosa cuts/pads, so do we."""
    import librosa

    rng = np.random.default_rng(3)
    for rate, length in [(44100, 44101), (48000, 4799), (22050, 1001), (96000, 96007), (8000, 333)]:
        x = rng.standard_normal(length).astype(np.float32) * 0.1
        expected = librosa.resample(x, orig_sr=rate, target_sr=16000)
        assert torch.equal(resample(torch.from_numpy(x), rate, 16000), torch.from_numpy(expected))
        assert resample(x, rate, 16000).shape == (math.ceil(length * 16000 / rate),)
    stereo = rng.standard_normal((2, 4410)).astype(np.float32)
    per_row = torch.stack([resample(row, 44100, 16000) for row in stereo])
    assert torch.equal(resample(stereo, 44100, 16000), per_row)


def test_downsampling_removes_content_above_the_new_nyquist():
    t = np.arange(48000) / 48000
    tone = np.sin(2 * np.pi * 12000 * t)  # above 8 kHz: must not alias into the 16 kHz result
    y = resample(torch.from_numpy(tone).float(), 48000, 16000).numpy()
    assert np.sqrt(np.mean(y[500:-500] ** 2)) < 1e-3


def test_downmix_is_numpy_mean_for_many_channels():
    x = np.random.default_rng(4).standard_normal((5, 1000)).astype(np.float32)
    assert np.array_equal(downmix(torch.from_numpy(x)).numpy(), np.mean(x, axis=0))


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
    with pytest.raises(InputError, match="holds 2 songs"):
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


def test_mono_file_read_frame_by_frame_equals_the_whole_decode(tmp_path):
    """read_mono_file (downmix per decoded frame, int16-units scaling after) == downmix(to_unit_range(decode))."""
    from singer_core.audio.waveform import downmix, read_mono_file, to_unit_range

    stereo, rate = read_audio_file(DATA / "0001.wav")
    mono, mono_rate = read_mono_file(DATA / "0001.wav")
    assert mono_rate == rate and torch.equal(mono, downmix(to_unit_range(stereo)))
