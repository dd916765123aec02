"""Song -> per-frame audio tokens, exactly as SINGER's inference computes them.

Official steps (``AudioProcessor.preprocess`` + ``process_audio_emb``; fixtures README section 5):
16 kHz mono waveform -> ``(x - mean) / sqrt(var + 1e-7)`` -> zero padding so the frame count is a multiple of the
clip length -> conv features (50 Hz) -> linear interpolation (``align_corners=True``) to the 25 fps frame count
-> feature projection -> transformer, keeping every layer's output -> ``[frames, layers, hidden]`` -> windows of
5 frames (i-2..i+2, indices clamped) ``[frames, 5, layers, hidden]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import Wav2Vec2Model

from singer_core.audio.chunking import LongAudioPolicy, chunked_hidden_states
from singer_core.audio.wav2vec import conv_features, conv_frame_count, encoder_hidden_states
from singer_core.audio.waveform import WAV2VEC_SAMPLE_RATE
from singer_core.errors import AudioTooShortError, InputError

FPS = 25
WINDOW_RADIUS = 2  # process_audio_emb: frames i-2 .. i+2
NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


@dataclass
class AudioEncoding:
    """Every intermediate of the official computation for one song (batch of one)."""

    input_values: torch.Tensor | None  # [1, padded samples]  normalised, zero padded (None: a long song, streamed)
    conv_features: torch.Tensor  # [1, C, conv frames]  50 Hz
    projected_hidden: torch.Tensor  # [1, frames, hidden]  after interpolation + feature projection
    hidden_states: list[torch.Tensor]  # per layer [1, frames, hidden]  (hidden_states[1:] of transformers)
    audio_length: int  # frames the song itself covers: ceil(samples / 16000 * fps)

    @property
    def last_hidden_state(self) -> torch.Tensor:
        return self.hidden_states[-1]

    @property
    def embeddings(self) -> torch.Tensor:
        """``[frames, layers, hidden]`` (official ``audio_emb``), filled layer by layer: one copy of the
        song's features, not the three that stacking and transposing would make."""
        first = self.hidden_states[0]
        out = torch.empty(first.shape[1], len(self.hidden_states), first.shape[2], dtype=first.dtype,
                          device=first.device)  # fmt: skip
        for layer, hidden in enumerate(self.hidden_states):
            out[:, layer] = hidden[0]
        return out


@dataclass
class AudioFeatures:
    """Per-frame audio tokens for the video: ``embeddings`` ``[frames, layers, hidden]``.

    ``frames`` is ``audio_length`` rounded up to a multiple of ``clip_length`` (the official padding); frames past
    ``audio_length`` come from the zero padding and the video is cut back to ``audio_length`` at the end.
    ``windows`` / ``window_slice`` give the official ``[n, 5, layers, hidden]`` windows.
    """

    embeddings: torch.Tensor
    audio_length: int
    fps: int
    clip_length: int

    @property
    def frames(self) -> int:
        return self.embeddings.shape[0]

    @property
    def windows(self) -> torch.Tensor:
        """All windows ``[frames, 5, layers, hidden]`` (5x the embeddings' memory; prefer ``window_slice``)."""
        return self.window_slice(0, self.frames)

    def window_slice(self, start: int, stop: int) -> torch.Tensor:
        """Windows of frames ``start..stop-1``: frame i gets frames i-2..i+2, indices clamped to the song."""
        centres = torch.arange(start, stop, device=self.embeddings.device)
        offsets = torch.arange(-WINDOW_RADIUS, WINDOW_RADIUS + 1, device=self.embeddings.device)
        indices = (centres[:, None] + offsets[None, :]).clamp(0, self.frames - 1)
        return self.embeddings[indices]


def frame_count(num_samples: int, sample_rate: int = WAV2VEC_SAMPLE_RATE, fps: int = FPS) -> int:
    """Video frames covered by the song, with the official expression ``ceil(samples / rate * fps)``."""
    return math.ceil(num_samples / sample_rate * fps)


def normalize_waveform(waveform: torch.Tensor) -> torch.Tensor:
    """Feature-extractor normalisation ``(x - mean) / sqrt(var + 1e-7)``; silence stays zero (no NaN)."""
    wide = waveform.double()
    mean, var = wide.mean(), wide.var(unbiased=False)
    return (waveform - mean.to(waveform.dtype)) / torch.sqrt(var + NORM_EPS).to(waveform.dtype)


class NormalizedSong:
    """The normalised, zero-padded input of a long song, made a piece at a time for the chunked conv encoder
    (``wav2vec.SampleSource``): only the song itself is held, never a normalised or padded copy of it.

    Each piece is ``(x - mean) / sqrt(var + 1e-7)`` elementwise with the same float32 operands as
    ``normalize_waveform``, so its samples have the same bits; the statistics are accumulated in float64 over
    pieces (a different summation order than one reduction over the whole song: equal to float64 rounding).
    """

    PIECE = 1 << 16  # samples per piece of the statistics pass (0.5 MiB in float64)

    def __init__(self, waveform: torch.Tensor, padded_length: int, device, dtype) -> None:
        self.waveform, self.length, self.device, self.dtype = waveform, padded_length, device, dtype
        total, count = torch.zeros((), dtype=torch.float64), waveform.shape[0]
        for start in range(0, count, self.PIECE):
            total += waveform[start : start + self.PIECE].double().sum()
        mean = total / count
        squares = torch.zeros((), dtype=torch.float64)
        for start in range(0, count, self.PIECE):
            squares += (waveform[start : start + self.PIECE].double() - mean).square().sum()
        self.mean = mean.to(waveform.dtype)
        self.std = torch.sqrt(squares / count + NORM_EPS).to(waveform.dtype)

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)`` of the normalised song followed by its zero padding -> ``[1, n]``."""
        real = self.waveform[start : min(stop, self.waveform.shape[0])]
        values = (real - self.mean) / self.std
        if stop > self.waveform.shape[0]:
            values = F.pad(values, (0, stop - max(start, self.waveform.shape[0])))
        return values.to(self.device, self.dtype)[None]


def padded_frame_count(frames: int, clip_length: int) -> int:
    """``frames`` rounded up to a multiple of ``clip_length`` (the official padding; unchanged if ``<= 0``)."""
    if clip_length <= 0 or frames % clip_length == 0:
        return frames
    return frames + clip_length - frames % clip_length


def pad_to_clip_length(values: torch.Tensor, frames: int, clip_length: int, samples_per_frame: int):
    """Zero-pad ``(clip_length - frames % clip_length)`` frames of samples; returns (values, padded frame count)."""
    padded = padded_frame_count(frames, clip_length)
    if padded == frames:
        return values, frames
    return F.pad(values, (0, (padded - frames) * samples_per_frame)), padded


def interpolate_to_frames(features: torch.Tensor, frames: int) -> torch.Tensor:
    """Hallo's ``linear_interpolation``: ``[B, C, T50] -> [B, frames, C]`` (linear, ``align_corners=True``)."""
    return F.interpolate(features, size=frames, mode="linear", align_corners=True).transpose(1, 2)


@torch.no_grad()
def encode_audio(
    waveform: torch.Tensor,
    model: Wav2Vec2Model,
    clip_length: int = 16,
    fps: int = FPS,
    policy: LongAudioPolicy | None = None,
) -> AudioEncoding:
    """Run the official computation on a 16 kHz mono waveform ``[samples]`` (see ``prepare_waveform``)."""
    policy = policy or LongAudioPolicy()
    samples_per_frame = WAV2VEC_SAMPLE_RATE // fps
    if waveform.dim() != 1:
        raise InputError(f"encode_audio expects a mono waveform [samples]; got shape {tuple(waveform.shape)}.")
    if waveform.shape[0] < samples_per_frame:
        raise AudioTooShortError(
            f"The audio is {waveform.shape[0] / WAV2VEC_SAMPLE_RATE:.3f} s long, shorter than one video frame "
            f"({1 / fps:.2f} s at {fps} fps). Use a longer song."
        )
    param = next(model.parameters())
    waveform = waveform.to(torch.float32)
    audio_length = frame_count(waveform.shape[0], WAV2VEC_SAMPLE_RATE, fps)
    frames = padded_frame_count(audio_length, clip_length)
    padded = waveform.shape[0] + (frames - audio_length) * samples_per_frame
    if conv_frame_count(model.config, padded) > policy.conv_chunk_frames:  # long: never a whole normalised copy
        values = None
        song = NormalizedSong(waveform, padded, param.device, param.dtype)
        conv = conv_features(model, song, policy.conv_chunk_frames, policy.conv_piece_frames)
    else:  # the official computation, step by step
        values = normalize_waveform(waveform).to(param.device, param.dtype)
        values = pad_to_clip_length(values, audio_length, clip_length, samples_per_frame)[0][None]
        conv = conv_features(model, values, policy.conv_chunk_frames)
    projected, _ = model.feature_projection(interpolate_to_frames(conv, frames))
    if policy.is_long(frames):
        hidden_states = chunked_hidden_states(model, projected, policy)
    else:
        hidden_states = encoder_hidden_states(model, projected)
    return AudioEncoding(values, conv, projected, hidden_states, audio_length)


def extract_audio_features(
    waveform: torch.Tensor,
    model: Wav2Vec2Model,
    clip_length: int = 16,
    fps: int = FPS,
    policy: LongAudioPolicy | None = None,
) -> AudioFeatures:
    """16 kHz mono waveform -> ``AudioFeatures`` (embeddings on the CPU, float32)."""
    encoding = encode_audio(waveform, model, clip_length, fps, policy)
    embeddings = encoding.embeddings.float().cpu()
    return AudioFeatures(embeddings, encoding.audio_length, fps, clip_length)
