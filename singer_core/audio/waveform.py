"""Waveform preparation: any host's audio tensor -> float32 mono at 16 kHz.

The official pipeline reads the song with ``librosa.load(path, sr=16000)``: samples scaled to [-1, 1],
channels averaged, resampled to 16 kHz. This module does the same in torch so hosts can pass tensors
(ComfyUI's ``AUDIO`` dict holds ``waveform [B, C, T]`` and ``sample_rate``). The resampler is our own
band-limited windowed-sinc (Kaiser) polyphase filter: torchaudio is not a dependency.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from singer_core.errors import InputError

WAV2VEC_SAMPLE_RATE = 16000

# A float waveform whose peak exceeds this is taken to be in int16 units (-32768..32767), not [-1, 1].
_INT16_RANGE_PEAK = 2.0
_INT16_SCALE = 32768.0


def read_audio_file(path: str | Path) -> tuple[torch.Tensor, int]:
    """Decode an audio file (wav, flac, mp3, ...) with PyAV -> (``[channels, samples]`` float32, sample rate)."""
    import av  # imported here: only the file-reading entry points need it

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Audio file not found: {path}. Check the path of the song you passed.")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            to_float = av.AudioResampler(format="fltp")
            chunks = []
            for frame in container.decode(stream):
                for converted in to_float.resample(frame):
                    chunks.append(converted.to_ndarray())
            for converted in to_float.resample(None):
                chunks.append(converted.to_ndarray())
            sample_rate = stream.rate or stream.codec_context.sample_rate
    except (av.error.FFmpegError, IndexError) as error:
        raise InputError(
            f"Cannot decode audio file {path}: {error}. Convert it to WAV or MP3 and try again."
        ) from error
    if not chunks:
        raise InputError(f"Audio file {path} contains no samples.")
    return torch.from_numpy(np.concatenate(chunks, axis=1).astype(np.float32)), int(sample_rate)


def as_channels_first(waveform: torch.Tensor) -> torch.Tensor:
    """Accept ``[T]``, ``[C, T]`` or a single-item ComfyUI batch ``[1, C, T]``; return ``[C, T]``."""
    if not isinstance(waveform, torch.Tensor):
        waveform = torch.as_tensor(np.asarray(waveform))
    if waveform.dim() == 3:
        if waveform.shape[0] != 1:
            raise InputError(
                f"The audio input holds a batch of {waveform.shape[0]} clips; pass a single song (batch size 1)."
            )
        waveform = waveform[0]
    if waveform.dim() == 1:
        waveform = waveform[None]
    if waveform.dim() != 2:
        raise InputError(f"Audio waveform must be [samples], [channels, samples] or [1, channels, samples]; "
                         f"got shape {tuple(waveform.shape)}.")
    if waveform.shape[0] > waveform.shape[1]:
        raise InputError(f"Audio waveform of shape {tuple(waveform.shape)} has more channels than samples; "
                         f"expected [channels, samples].")
    return waveform


def to_unit_range(waveform: torch.Tensor) -> torch.Tensor:
    """Float32 samples in [-1, 1]: integer PCM and float data in int16 units are scaled by 1/32768."""
    if not waveform.dtype.is_floating_point:
        bits = torch.iinfo(waveform.dtype).bits
        return waveform.to(torch.float32) / float(2 ** (bits - 1))
    waveform = waveform.to(torch.float32)
    if waveform.numel() and not torch.isfinite(waveform).all():
        raise InputError("The audio contains NaN or infinite samples; re-export the song and try again.")
    if waveform.numel() and waveform.abs().max() > _INT16_RANGE_PEAK:
        return waveform / _INT16_SCALE
    return waveform


def downmix(waveform: torch.Tensor) -> torch.Tensor:
    """``[C, T]`` -> ``[T]`` by the channel mean, as ``librosa.to_mono`` does."""
    return waveform.mean(dim=0) if waveform.shape[0] > 1 else waveform[0]


@lru_cache(maxsize=8)
def _sinc_kernels(orig: int, new: int, zero_crossings: int, rolloff: float, beta: float) -> tuple[torch.Tensor, int]:
    """Polyphase low-pass kernels ``[new, 1, taps]`` for rates reduced by their gcd, and the half width.

    Output phase ``p`` sits at input position ``p * orig / new``; its kernel samples a Kaiser-windowed sinc
    with cut-off ``rolloff * min(orig, new) / 2`` (in units of the reduced rates) at the integer input offsets.
    """
    cutoff = min(orig, new) * rolloff  # = 2 * cut-off frequency in reduced-rate units
    half_width = math.ceil(zero_crossings * orig / cutoff)
    offsets = torch.arange(-half_width, half_width + orig, dtype=torch.float64)  # input offsets per block
    phase_pos = torch.arange(new, dtype=torch.float64)[:, None] * orig / new  # output position inside the block
    t = (offsets[None, :] - phase_pos) * cutoff / orig  # distance in units of the filter's zero crossings
    inside = t.abs() <= zero_crossings
    ratio = (t / zero_crossings).clamp(-1.0, 1.0)
    window = torch.i0(beta * torch.sqrt(1.0 - ratio**2)) / torch.i0(torch.tensor(beta, dtype=torch.float64))
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(math.pi * t) / (math.pi * t))
    kernels = torch.where(inside, sinc * window, torch.zeros_like(t)) * (cutoff / orig)
    return kernels[:, None, :].to(torch.float32), half_width


def resample(
    waveform: torch.Tensor,
    orig_rate: int,
    new_rate: int,
    zero_crossings: int = 24,
    rolloff: float = 0.945,
    beta: float = 12.0,
) -> torch.Tensor:
    """Band-limited resampling of ``[..., T]`` with a Kaiser-windowed sinc; output has ``ceil(T*new/orig)`` samples."""
    if orig_rate <= 0 or new_rate <= 0:
        raise InputError(f"Sample rates must be positive; got {orig_rate} -> {new_rate}.")
    if orig_rate == new_rate:
        return waveform
    g = math.gcd(int(orig_rate), int(new_rate))
    orig, new = int(orig_rate) // g, int(new_rate) // g
    kernels, half_width = _sinc_kernels(orig, new, zero_crossings, rolloff, beta)
    shape = waveform.shape
    flat = waveform.reshape(-1, 1, shape[-1])
    length = shape[-1]
    flat = F.pad(flat, (half_width, half_width + orig))
    blocks = F.conv1d(flat, kernels.to(flat.device, flat.dtype), stride=orig)  # [N, new, blocks]
    out = blocks.transpose(1, 2).reshape(flat.shape[0], -1)
    out_length = math.ceil(length * new / orig)
    return out[:, :out_length].reshape(*shape[:-1], out_length)


def prepare_waveform(waveform: torch.Tensor, sample_rate: int, target_rate: int = WAV2VEC_SAMPLE_RATE) -> torch.Tensor:
    """Any waveform (``[T]``, ``[C, T]``, ``[1, C, T]``; float or int PCM; any rate) -> float32 mono ``[T']``."""
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise InputError(f"Audio sample rate must be a positive integer; got {sample_rate!r}.")
    mono = downmix(to_unit_range(as_channels_first(waveform)))
    return resample(mono, int(sample_rate), target_rate).contiguous()


def load_waveform(path: str | Path, target_rate: int = WAV2VEC_SAMPLE_RATE) -> torch.Tensor:
    """``librosa.load(path, sr=target_rate)`` equivalent: file -> float32 mono at ``target_rate``."""
    waveform, sample_rate = read_audio_file(path)
    return prepare_waveform(waveform, sample_rate, target_rate)
