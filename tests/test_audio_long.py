"""Long songs: chunked conv features (equal to fp32 rounding), bounded transformer windows, measured error of the
stitching."""

from __future__ import annotations

import pytest
import torch

import singer_core.audio.chunking as chunking
import singer_core.audio.features as features_module
import singer_core.audio.wav2vec as wav2vec_module
from singer_core.audio.chunking import LongAudioPolicy
from singer_core.audio.features import encode_audio, extract_audio_features, frame_count
from singer_core.audio.wav2vec import build_wav2vec, conv_features, load_state_into
from singer_core.audio.waveform import load_waveform
from tests.conftest import DATA, assert_close, fixture_weights
from tests.tiny_models.wav2vec import tiny_wav2vec_config

EXACT = LongAudioPolicy(max_one_shot_frames=10**9, conv_chunk_frames=10**9)  # everything one-shot


@pytest.fixture(scope="module")
def tiny_model():
    return load_state_into(build_wav2vec(tiny_wav2vec_config()), fixture_weights("wav2vec_tiny"), "fixture")


def _song(seconds_of_repeats: int) -> torch.Tensor:
    """The 2 s example song repeated with random gains and a little noise (varied, realistic levels)."""
    song = load_waveform(DATA / "0001.wav")
    g = torch.Generator().manual_seed(0)
    parts = [song * (0.5 + torch.rand(1, generator=g)) + 0.01 * torch.randn(song.shape, generator=g)
             for _ in range(seconds_of_repeats // 2)]
    return torch.cat(parts)


def test_chunked_conv_features_equal_one_shot(tiny_model):
    values = torch.randn(1, 16000 * 12) * 0.5
    one_shot = conv_features(tiny_model, values)
    for chunk in (97, 256):
        chunked = conv_features(tiny_model, values, chunk_frames=chunk)
        assert chunked.shape == one_shot.shape
        err = (chunked - one_shot).abs().max().item()
        assert err <= 1e-5 * one_shot.abs().max().item(), f"chunk {chunk}: {err:.2e}"


def test_default_policy_keeps_normal_songs_one_shot(tiny_model, monkeypatch):
    calls = []
    monkeypatch.setattr(features_module, "chunked_hidden_states",
                        lambda *a, **k: calls.append(1) or chunking.chunked_hidden_states(*a, **k))
    wave = _song(20)
    default = encode_audio(wave, tiny_model, 16)
    assert not calls
    one_shot = encode_audio(wave, tiny_model, 16, policy=EXACT)
    assert torch.equal(default.conv_features, one_shot.conv_features)  # 20 s: conv in one piece too
    assert torch.equal(default.embeddings, one_shot.embeddings)


def test_conv_pieces_on_a_real_song_match_one_shot_features(tiny_model, monkeypatch):
    """70 s (> 30 s conv pieces, < 2 min one-shot transformer): features within 1e-5 of all-one-shot."""
    stats_passes = []  # only the pieces path gathers the first layer's GroupNorm statistics in a pass of its own
    stats = wav2vec_module._first_layer_stats
    monkeypatch.setattr(wav2vec_module, "_first_layer_stats", lambda *a: stats_passes.append(1) or stats(*a))
    wave = _song(70)
    default = encode_audio(wave, tiny_model, 16)
    assert len(stats_passes) == 1  # really took the pieces path
    one_shot = encode_audio(wave, tiny_model, 16, policy=EXACT)
    assert len(stats_passes) == 1
    assert_close(default.conv_features, one_shot.conv_features, 1e-7, "conv features")
    assert_close(default.embeddings, one_shot.embeddings, 1e-5, "embeddings")
    assert LongAudioPolicy().max_one_shot_frames == 3000  # 2 minutes at 25 fps (documented threshold)


def test_long_songs_are_normalised_piece_by_piece_with_the_official_bits(tiny_model):
    """Past the conv-piece threshold the normalised, padded input is never made whole: each piece is
    ``(x - mean) / sqrt(var + 1e-7)`` then zeros, the same samples as the official whole-song computation."""
    from singer_core.audio.features import NormalizedSong, normalize_waveform, pad_to_clip_length

    wave = _song(70)
    frames = frame_count(wave.shape[0])
    official, padded_frames = pad_to_clip_length(normalize_waveform(wave), frames, 16, 640)
    song = NormalizedSong(wave, official.shape[0], "cpu", torch.float32)
    assert padded_frames % 16 == 0 and official.shape[0] > wave.shape[0]
    edges = [(0, 5000), (123_456, 700_000), (wave.shape[0] - 3000, official.shape[0]), (0, official.shape[0])]
    for start, stop in edges:
        piece = song.read(start, stop)
        assert piece.shape == (1, stop - start)
        assert torch.equal(piece[0], official[start:stop]), (start, stop)
    assert encode_audio(wave, tiny_model, 16).input_values is None  # nothing song-long kept
    assert encode_audio(_song(20), tiny_model, 16).input_values is not None  # short: the official steps


def test_long_song_stitching_error_is_small(tiny_model):
    """150 s song (3776 frames > 3000): default chunked encode vs one-shot on the tiny random model.

    Measured: max |diff| 2.9e-2, mean 3.8e-3, relative RMS 5.4e-3 (values up to 4.0). A random tiny model
    attends uniformly over the whole song, the worst case for cutting attention at 10 s of context.
    """
    wave = _song(150)
    one_shot = encode_audio(wave, tiny_model, 16, policy=EXACT).embeddings
    chunked = encode_audio(wave, tiny_model, 16).embeddings
    diff = (chunked - one_shot).abs()
    relative_rms = ((diff**2).mean() / (one_shot**2).mean()).sqrt().item()
    assert diff.max().item() < 0.05 and diff.mean().item() < 6e-3 and relative_rms < 1e-2
    assert torch.isfinite(chunked).all()


def test_several_minutes_use_bounded_windows(tiny_model, monkeypatch):
    """A 4-minute song: no transformer call spans more than chunk + 2 x context frames."""
    spans = []
    original = chunking.encoder_hidden_states
    monkeypatch.setattr(chunking, "encoder_hidden_states",
                        lambda model, hidden: spans.append(hidden.shape[1]) or original(model, hidden))
    policy = LongAudioPolicy()
    wave = _song(240)
    result = extract_audio_features(wave, tiny_model, 16, policy=policy)
    assert result.audio_length == frame_count(wave.shape[0]) == 6038 and result.frames == 6048
    assert len(spans) == 5 and max(spans) <= policy.chunk_frames + 2 * policy.context_frames
    assert result.window_slice(0, 16).shape == (16, 5, 4, 32)
