"""song_features: any host layout / rate / sample format reaches the same features as the 16 kHz path."""

from __future__ import annotations

import pytest
import torch

from singer_core.audio import read_audio_file, song_features
from singer_core.audio.separator import MdxSeparator
from singer_core.audio.wav2vec import build_wav2vec, load_state_into
from singer_core.audio.waveform import resample
from singer_core.conformance.common import MODULE_ATOL
from singer_core.errors import AudioTooShortError, InputError
from tests.conftest import DATA, assert_close, fixture_io, fixture_weights
from tests.tiny_models.separator import write_tiny_mdx_onnx
from tests.tiny_models.wav2vec import tiny_wav2vec_config


@pytest.fixture(scope="module")
def tiny_model():
    return load_state_into(build_wav2vec(tiny_wav2vec_config()), fixture_weights("wav2vec_tiny"), "fixture")


@pytest.fixture(scope="module")
def song():
    return read_audio_file(DATA / "0001.wav")


def test_comfy_audio_dict_layout_matches_the_official_features(tiny_model, song):
    waveform, rate = song
    comfy_audio = {"waveform": waveform[None], "sample_rate": rate}  # ComfyUI AUDIO: [B, C, T]
    features = song_features(comfy_audio["waveform"], comfy_audio["sample_rate"], tiny_model, 16)
    assert_close(features.windows, fixture_io("audio_features")["clip16.audio_emb_windows"], MODULE_ATOL, "windows")


def test_int16_pcm_input_matches(tiny_model, song):
    waveform, rate = song
    pcm = torch.round(waveform * 32768).to(torch.int16)
    features = song_features(pcm, rate, tiny_model, 4)
    assert_close(features.embeddings, fixture_io("audio_features")["clip4.audio_emb"], MODULE_ATOL, "int16 input")


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
def test_other_sample_rates_give_nearly_the_same_features(tiny_model, song, rate):
    """The song resampled up to ``rate`` and back by the pipeline: only the 7.56-8 kHz band is lost.

    Measured max |diff| on the tiny random model: 0.071 for all three rates (values up to 4.0).
    """
    waveform, _ = song
    features = song_features(resample(waveform, 16000, rate), rate, tiny_model, 16)
    expected = fixture_io("audio_features")["clip16.audio_emb"]
    assert features.audio_length == 51 and features.frames == 64
    assert (features.embeddings - expected).abs().max() < 0.1


def test_8k_song_works(tiny_model, song):
    waveform, _ = song
    features = song_features(resample(waveform, 16000, 8000), 8000, tiny_model, 16)
    assert features.audio_length == 51 and torch.isfinite(features.embeddings).all()


def test_separator_in_front(tiny_model, song, tmp_path):
    waveform, rate = song
    separator = MdxSeparator(write_tiny_mdx_onnx(tmp_path / "id.onnx", dim_t=32))
    features = song_features(waveform, rate, tiny_model, 16, separator=separator)
    assert features.frames == 64 and abs(features.audio_length - 51) <= 1
    assert torch.isfinite(features.embeddings).all()


@pytest.mark.parametrize("layout", ["mono", "comfy_batch", "int16"])
def test_silence_is_refused_by_the_library(tiny_model, layout):
    """The CLI and the nodes both reach this check through song_features (one message for both)."""
    quiet = torch.full((2, 16000), 5e-4)
    waveform = {"mono": quiet[0], "comfy_batch": quiet[None], "int16": (quiet * 32768).to(torch.int16)}[layout]
    with pytest.raises(InputError, match="silent .* -60 dBFS"):
        song_features(waveform, 16000, tiny_model, 16)


def test_too_short_and_empty_audio_are_refused(tiny_model):
    with pytest.raises(AudioTooShortError, match="shorter than one video frame"):
        song_features(torch.full((1, 200), 0.5), 16000, tiny_model, 16)
    with pytest.raises(InputError):
        song_features(torch.zeros(2, 0), 16000, tiny_model, 16)
