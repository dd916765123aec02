"""Parity of the audio features with the official AudioProcessor + process_audio_emb (fixtures README 5)."""

from __future__ import annotations

import math

import pytest
import torch

from singer_core.audio.features import AudioFeatures, encode_audio, extract_audio_features, frame_count
from singer_core.audio.wav2vec import build_wav2vec, load_state_into
from singer_core.audio.waveform import load_waveform
from singer_core.conformance.audio import run_audio_features
from singer_core.conformance.common import MODULE_ATOL
from singer_core.errors import AudioTooShortError
from tests.conftest import DATA, FIXTURES, assert_close, fixture_io, fixture_json, fixture_weights
from tests.tiny_models.wav2vec import tiny_wav2vec_config


@pytest.fixture(scope="module")
def tiny_model():
    return load_state_into(build_wav2vec(tiny_wav2vec_config()), fixture_weights("wav2vec_tiny"), "fixture")


@pytest.fixture(scope="module")
def io():
    return fixture_io("audio_features")


def test_waveform_matches_librosa_load(io):
    """PyAV decode + channel mean == librosa.load(sr=16000) of the stereo 16 kHz example, bit for bit on every CPU:
    no resampling at 16 kHz, and int16 / 32768 and the mean of two channels are exactly rounded IEEE operations."""
    assert_close(load_waveform(DATA / "0001.wav"), io["waveform.librosa_mono_16k"], 0.0, "librosa mono")


@pytest.mark.parametrize("clip_length", [16, 4])
def test_every_intermediate_matches_official(tiny_model, io, clip_length):
    encoding = encode_audio(io["waveform.librosa_mono_16k"], tiny_model, clip_length)
    features = AudioFeatures(encoding.embeddings, encoding.audio_length, 25, clip_length)
    prefix = f"clip{clip_length}."
    assert_close(encoding.input_values, io[prefix + "input_values"], MODULE_ATOL, "input_values")
    assert_close(encoding.conv_features, io[prefix + "conv_features"], MODULE_ATOL, "conv_features")
    assert_close(encoding.projected_hidden, io[prefix + "projected_hidden"], MODULE_ATOL, "projected_hidden")
    assert_close(encoding.last_hidden_state, io[prefix + "last_hidden_state"], MODULE_ATOL, "last_hidden_state")
    assert_close(features.embeddings, io[prefix + "audio_emb"], MODULE_ATOL, "audio_emb")
    assert_close(features.windows, io[prefix + "audio_emb_windows"], MODULE_ATOL, "audio_emb_windows")
    expected = fixture_json("audio_features")["clip_lengths"][str(clip_length)]
    assert encoding.audio_length == expected["audio_length_frames"]


def test_clip_length_changes_the_features(tiny_model, io):
    """The padding moves the interpolation grid: same frames differ between clip lengths (as officially)."""
    wave = io["waveform.librosa_mono_16k"]
    a = extract_audio_features(wave, tiny_model, 16).embeddings[:51]
    b = extract_audio_features(wave, tiny_model, 4).embeddings[:51]
    assert (a - b).abs().max() > 1e-3


def test_window_slice_equals_full_windows(tiny_model, io):
    features = extract_audio_features(io["waveform.librosa_mono_16k"], tiny_model, 16)
    assert torch.equal(features.window_slice(10, 26), features.windows[10:26])
    last = features.window_slice(63, 64)[0]
    assert torch.equal(last, features.embeddings[[61, 62, 63, 63, 63]])


def test_conformance_runner_passes_all_comparisons():
    case_path = FIXTURES / "audio_features.json"
    comparisons = run_audio_features(fixture_json("audio_features"), case_path)
    names = {c.name for c in comparisons}
    for clip in (16, 4):
        for step in ("input_values", "conv_features", "projected_hidden", "last_hidden_state", "audio_emb",
                     "audio_emb_windows", "audio_length"):
            assert f"clip{clip}.{step}" in names
    bad = [(c.name, c.max_abs_error) for c in comparisons if not c.ok]
    assert not bad, bad


def test_frame_count_is_the_official_expression():
    assert frame_count(32200) == 51
    assert frame_count(640) == 1 and frame_count(641) == 2
    assert frame_count(16000 * 7) == math.ceil(16000 * 7 / 16000 * 25)


def test_silence_gives_finite_features(tiny_model):
    features = extract_audio_features(torch.zeros(16000), tiny_model, 16)
    assert features.audio_length == 25 and features.frames == 32
    assert torch.isfinite(features.embeddings).all()


@pytest.mark.parametrize("samples", [0, 1, 639])
def test_shorter_than_one_frame_is_a_clear_error(tiny_model, samples):
    with pytest.raises(AudioTooShortError, match="shorter than one video frame"):
        extract_audio_features(torch.randn(samples), tiny_model, 16)


def test_one_frame_of_audio_works(tiny_model):
    features = extract_audio_features(torch.randn(640), tiny_model, 16)
    assert features.audio_length == 1 and features.frames == 16
    assert torch.isfinite(features.embeddings).all()
