"""One call from a song to the per-frame audio tokens: optional vocal separation, 16 kHz mono, wav2vec2."""

from __future__ import annotations

import torch
from transformers import Wav2Vec2Model

from singer_core.audio.chunking import LongAudioPolicy
from singer_core.audio.features import FPS, AudioFeatures, extract_audio_features
from singer_core.audio.separator import MdxSeparator, separate_vocals
from singer_core.audio.waveform import as_channels_first, prepare_waveform, require_audible, to_unit_range


def song_features(
    waveform: torch.Tensor,
    sample_rate: int,
    wav2vec: Wav2Vec2Model,
    clip_length: int = 16,
    fps: int = FPS,
    separator: MdxSeparator | None = None,
    policy: LongAudioPolicy | None = None,
) -> AudioFeatures:
    """Song (``[T]``, ``[C, T]`` or ComfyUI's ``[1, C, T]``; any rate; float or int PCM) -> ``AudioFeatures``.

    With a ``separator`` the vocal stem is encoded instead of the mix, as the official inference does.
    The input checks every host relies on live here: one song, finite samples, not silent, at least one frame
    long (``InputError`` / ``AudioTooShortError`` with the same words from the CLI and the nodes).
    """
    require_audible(to_unit_range(as_channels_first(waveform)))
    if separator is not None:
        waveform, sample_rate = separate_vocals(waveform, sample_rate, separator)
    return extract_audio_features(prepare_waveform(waveform, sample_rate), wav2vec, clip_length, fps, policy)
