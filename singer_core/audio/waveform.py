"""Waveform preparation: any host's audio -> float32 mono at 16 kHz, exactly as the official code reads it.

The official pipeline reads the song with ``librosa.load(path, sr=16000)``: decode to float32 (int16 / 32768),
average the channels (``numpy.mean`` over the channel axis, in float32), resample with soxr at quality
``soxr_hq`` (librosa's default ``res_type``), cut or pad to ``ceil(T * 16000 / rate)`` samples. This module does
the same steps with the same libraries (PyAV to decode, numpy for the mean, python-soxr to resample), so a
48 kHz stereo song gives ``librosa.load``'s waveform bit for bit, and the stored official one on x86 CPUs (soxr's
SSE code; fixture ``audio_48k``; docs/audio_models.md).
Files (the CLI) and ComfyUI ``AUDIO`` tensors (``waveform [B, C, T]`` at the file's rate) take this one path.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from singer_core.errors import AudioTooShortError, InputError

WAV2VEC_SAMPLE_RATE = 16000
RESAMPLER_QUALITY = "soxr_hq"  # librosa.load's default res_type, hence the official resampler

# A float waveform whose peak exceeds this is taken to be in int16 units (-32768..32767), not [-1, 1].
_INT16_RANGE_PEAK = 2.0
_INT16_SCALE = 32768.0

# -60 dBFS: quieter than any mastered song, louder than dithered silence.
SILENCE_PEAK = 1e-3


def _open_audio(path: str | Path):
    """PyAV container of an audio file, with the library's error for a missing file."""
    import av  # imported here: only the file-reading entry points need it

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Audio file not found: {path}. Check the path of the song you passed.")
    try:
        container = av.open(str(path))
        container.streams.audio[0]
    except (av.error.FFmpegError, IndexError) as error:
        raise _decode_error(path, error) from error
    return container


def _decode_error(path, error) -> InputError:
    return InputError(f"Cannot decode audio file {path}: {error}. Convert it to WAV or MP3 and try again.")


def iter_audio_file(path: str | Path):
    """Decode an audio file frame by frame -> yields ``[channels, n]`` float32 numpy arrays (PyAV's own
    frames, a few thousand samples each), so a caller can keep only what it needs of a long song.
    ``audio_file_info`` gives the rate and channel count."""
    import av

    with _open_audio(path) as container:
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="fltp")
        try:
            for frame in container.decode(stream):
                for converted in to_float.resample(frame):
                    yield converted.to_ndarray()
            for converted in to_float.resample(None):
                yield converted.to_ndarray()
        except av.error.FFmpegError as error:
            raise _decode_error(path, error) from error


def audio_file_info(path: str | Path) -> tuple[int, int]:
    """(sample rate, channels) of an audio file's first audio stream, without decoding it."""
    with _open_audio(path) as container:
        stream = container.streams.audio[0]
        return int(stream.rate or stream.codec_context.sample_rate), int(stream.codec_context.channels or 1)


def read_audio_file(path: str | Path) -> tuple[torch.Tensor, int]:
    """Decode an audio file (wav, flac, mp3, ...) with PyAV -> (``[channels, samples]`` float32, sample rate)."""
    rate, _ = audio_file_info(path)
    chunks = list(iter_audio_file(path))
    if not chunks:
        raise InputError(f"Audio file {Path(path)} contains no samples.")
    waveform = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    return torch.from_numpy(waveform), rate


def read_mono_file(path: str | Path) -> tuple[torch.Tensor, int]:
    """Audio file -> (float32 mono ``[samples]`` in [-1, 1], its own rate), holding only the mono signal.

    Exactly ``downmix(to_unit_range(read_audio_file(path)))``, but each decoded frame is averaged over its
    channels as it arrives (the same ``numpy.mean`` per sample, so the same bits), and the int16-units
    scaling (an exact power of two) is applied to the mono signal once the whole song's peak is known.
    """
    rate, _ = audio_file_info(path)
    mono = _MonoReader(path)
    return torch.from_numpy(mono.join(list(mono))), rate


class _MonoReader:
    """Iterate an audio file as float32 mono pieces (``numpy.mean`` over the channels of each decoded frame),
    tracking what ``to_unit_range`` needs of the whole song: its peak and whether every sample is finite."""

    def __init__(self, path: str | Path) -> None:
        self.path, self.samples, self.peak, self.finite = Path(path), 0, 0.0, True

    def __iter__(self):
        for chunk in iter_audio_file(self.path):
            chunk = chunk.astype(np.float32, copy=False)
            if not chunk.size:
                continue
            self.finite = self.finite and bool(np.isfinite(chunk).all())
            self.peak = max(self.peak, float(np.abs(chunk).max()))
            self.samples += chunk.shape[1]
            yield np.mean(chunk, axis=0) if chunk.shape[0] > 1 else chunk[0]

    def join(self, pieces: list[np.ndarray]) -> np.ndarray:
        """``pieces`` (of this file, or a resampling of it) as one signal, checked and scaled: the checks and the
        int16-units scaling (exact: a power of two) need the whole song's peak, known once it has been read."""
        if not self.samples:
            raise InputError(f"Audio file {self.path} contains no samples.")
        if not self.finite:
            raise InputError("The audio contains NaN or infinite samples; re-export the song and try again.")
        signal = np.concatenate(pieces)
        if self.peak > _INT16_RANGE_PEAK:
            signal /= np.float32(_INT16_SCALE)
        return signal


def as_channels_first(waveform: torch.Tensor) -> torch.Tensor:
    """Accept ``[T]``, ``[C, T]`` or a single-item ComfyUI batch ``[1, C, T]``; return ``[C, T]``."""
    if not isinstance(waveform, torch.Tensor):
        waveform = torch.as_tensor(np.asarray(waveform))
    if waveform.dim() == 3:
        if waveform.shape[0] != 1:
            raise InputError(
                f"The audio input holds {waveform.shape[0]} songs (a batch); connect or pass one song."
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
    if waveform.numel() and not math.isfinite(peak := _peak(waveform)):
        raise InputError("The audio contains NaN or infinite samples; re-export the song and try again.")
    if waveform.numel() and peak > _INT16_RANGE_PEAK:
        return waveform / _INT16_SCALE
    return waveform


def _peak(waveform: torch.Tensor) -> float:
    """Largest absolute sample (NaN if any sample is NaN, inf if any is infinite), in one pass without a copy
    of the song (``aminmax`` instead of ``abs().max()``)."""
    low, high = torch.aminmax(waveform)
    return max(float(high), -float(low)) if not (torch.isnan(low) or torch.isnan(high)) else math.nan


def downmix(waveform: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``[C, T]`` -> ``[T]`` float32 by the channel mean, computed as ``librosa.to_mono`` does (``numpy.mean``)."""
    x = _as_float32_array(waveform)
    if x.ndim > 1 and x.shape[0] == 1:  # the mean of one channel is that channel, bit for bit: no copy
        x = x[0]
    return torch.from_numpy(np.ascontiguousarray(np.mean(x, axis=0) if x.ndim > 1 else x))


def require_audible(waveform: torch.Tensor, what: str = "The audio") -> None:
    """Refuse silence (peak below -60 dBFS of a unit-range waveform): there is no voice to sing along to."""
    if waveform.numel() == 0:
        raise AudioTooShortError(f"{what} is empty; use a song that is at least one video frame (0.04 s) long.")
    if _peak(waveform) < SILENCE_PEAK:
        raise InputError(
            f"{what} is silent (its loudest sample is below -60 dBFS), so there is no voice to sing along to. "
            "Connect the song itself, or check the file and any node that changes its volume."
        )


def _check_rate(rate, which: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise InputError(f"Audio {which} sample rate must be a positive whole number of Hz; got {rate!r}.")


def _as_float32_array(waveform: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(waveform, dtype=np.float32)


def resample(waveform: torch.Tensor | np.ndarray, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample ``[..., T]`` exactly as ``librosa.resample(res_type="soxr_hq")`` does -> float32 ``[..., T']``.

    Each row goes through ``soxr.resample(row, orig, new, quality="soxr_hq")`` (python-soxr, the resampler
    librosa itself calls), then is cut or zero-padded to ``ceil(T * new / orig)`` samples (librosa's
    ``fix_length``). Computed in float32 like ``librosa.load``; the result is a CPU tensor.
    """
    import soxr  # imported here: only the resampling entry points need it

    _check_rate(orig_rate, "original")
    _check_rate(new_rate, "target")
    x = _as_float32_array(waveform)
    if int(orig_rate) == int(new_rate):
        return torch.from_numpy(x)
    rows = x.reshape(-1, x.shape[-1])
    out_length = _resampled_length(x.shape[-1], orig_rate, new_rate)
    out = np.empty((rows.shape[0], out_length), dtype=np.float32)
    for row, target in zip(rows, out, strict=True):
        resampled = soxr.resample(row, int(orig_rate), int(new_rate), quality=RESAMPLER_QUALITY)
        target[:] = _fix_length(resampled, out_length)
    return torch.from_numpy(out.reshape(*x.shape[:-1], out_length))


def _resampled_length(samples: int, orig_rate: int, new_rate: int) -> int:
    """librosa's length of a resampled signal: ``ceil(T * new / orig)``."""
    return int(np.ceil(samples * (float(new_rate) / int(orig_rate))))


def _fix_length(signal: np.ndarray, length: int) -> np.ndarray:
    """librosa's ``fix_length``: cut, or pad with zeros, to ``length`` samples."""
    if signal.shape[0] >= length:
        return signal[:length]
    return np.concatenate([signal, np.zeros(length - signal.shape[0], dtype=signal.dtype)])


def prepare_waveform(waveform: torch.Tensor, sample_rate: int, target_rate: int = WAV2VEC_SAMPLE_RATE) -> torch.Tensor:
    """Any waveform (``[T]``, ``[C, T]``, ``[1, C, T]``; float or int PCM; any rate) -> float32 mono ``[T']``.

    The ``librosa.load(path, sr=target_rate)`` steps after decoding: unit range, channel mean, soxr_hq.
    """
    _check_rate(sample_rate, "input")
    mono = downmix(to_unit_range(as_channels_first(waveform)))
    return resample(mono, int(sample_rate), target_rate)


def load_waveform(path: str | Path, target_rate: int = WAV2VEC_SAMPLE_RATE) -> torch.Tensor:
    """``librosa.load(path, sr=target_rate)`` equivalent: file -> float32 mono at ``target_rate``.

    Streamed: each decoded frame is downmixed and fed to a ``soxr.ResampleStream`` (soxr_hq), so only the
    ``target_rate`` signal is ever held whole, never the song at its own rate and channel count. The stream
    gives the one-shot ``soxr.resample`` output bit for bit (checked at 22.05-96 kHz and any chunking; the tests
    compare with librosa itself); the int16-units scaling (a power of two) commutes exactly with the filter.
    """
    import soxr

    _check_rate(target_rate, "target")
    rate, _ = audio_file_info(path)
    mono = _MonoReader(path)
    if rate == int(target_rate):
        pieces = list(mono)
    else:
        stream = soxr.ResampleStream(rate, int(target_rate), 1, dtype="float32", quality=RESAMPLER_QUALITY)
        pieces = [stream.resample_chunk(piece, last=False) for piece in mono]
        pieces.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    signal = mono.join(pieces)
    del pieces
    if rate != int(target_rate):
        signal = _fix_length(signal, _resampled_length(mono.samples, rate, target_rate))
    return torch.from_numpy(signal)
