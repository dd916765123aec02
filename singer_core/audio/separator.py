"""Optional vocal separation with an MDX-Net ONNX model (the official pipeline uses ``Kim_Vocal_2.onnx``).

SINGER's inference first isolates the singing voice with audio-separator's MDX architecture, then computes the
wav2vec features of the vocal stem. This module runs the same MDX procedure with onnxruntime, in memory:

* the mix at 44.1 kHz, stereo (mono duplicated), scaled down to a 0.9 peak when louder;
* ``trim = n_fft // 2`` zeros in front, padding behind, chunks of ``hop * (dim_t - 1)`` samples every
  ``(1 - overlap)`` chunk; each chunk -> STFT (Hann, centred) -> ``[batch, 4, dim_f, dim_t]`` (real/imag of the
  two channels; the first 3 bins zeroed) -> model -> same layout (the vocal spectrogram) -> inverse STFT;
* Hann-windowed overlap-add normalised by the summed windows, trims removed, times ``compensate``.

Only one chunk is in the model at a time (``batch_size`` chunks with a larger batch), so memory is bounded by
the chunk size plus two song-length accumulators. ``dim_f`` / ``dim_t`` are read from the ONNX input shape.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from singer_core.audio.waveform import as_channels_first, resample, to_unit_range
from singer_core.errors import CheckpointError, InputError, ModelFileMissingError

SEPARATOR_HINT = (
    "Put Kim_Vocal_2.onnx (UVR MDX-Net vocal model, as used by audio-separator) in ComfyUI/models/audio_separator/ "
    "(command line: --models DIR puts it in DIR/audio_separator/), or turn vocal separation off."
)


@dataclass(frozen=True)
class MdxParams:
    """MDX-Net settings; the defaults are Kim_Vocal_2's (UVR model data) and audio-separator's MDX defaults."""

    n_fft: int = 7680
    hop_length: int = 1024
    dim_f: int = 3072
    dim_t: int = 256
    compensate: float = 1.009
    sample_rate: int = 44100
    overlap: float = 0.25
    batch_size: int = 1
    max_peak: float = 0.9  # audio-separator's normalization threshold, applied to the mix and to the stem
    zeroed_bins: int = 3  # lowest STFT bins cleared before the model

    @property
    def chunk_size(self) -> int:
        return self.hop_length * (self.dim_t - 1)

    @property
    def trim(self) -> int:
        return self.n_fft // 2


class MdxSeparator:
    """An MDX-Net ONNX model in an onnxruntime session, with the shapes read from its input."""

    def __init__(self, onnx_path: str | Path, params: MdxParams | None = None, providers: list[str] | None = None):
        import onnxruntime as ort  # only needed when separation is used

        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise ModelFileMissingError(f"Vocal separation model not found: {onnx_path}. {SEPARATOR_HINT}")
        try:
            self.session = ort.InferenceSession(str(onnx_path), providers=providers or ["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own unexported exception types
            raise CheckpointError(f"{onnx_path} is not a readable ONNX model ({error}). {SEPARATOR_HINT}") from error
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.params = _params_from_shape(params or MdxParams(), model_input.shape)

    def run(self, spectrogram: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: spectrogram.astype(np.float32)})[0]


def _params_from_shape(params: MdxParams, shape: list) -> MdxParams:
    if len(shape) != 4 or shape[1] not in (4, "4"):
        raise CheckpointError(f"Not an MDX-Net model: input shape {shape}, expected [batch, 4, dim_f, dim_t].")
    dim_f = shape[2] if isinstance(shape[2], int) else params.dim_f
    dim_t = shape[3] if isinstance(shape[3], int) else params.dim_t
    if dim_f > params.n_fft // 2 + 1:
        raise CheckpointError(f"MDX model has {dim_f} frequency bins, more than n_fft={params.n_fft} gives.")
    return replace(params, dim_f=dim_f, dim_t=dim_t)


def _stft(chunks: torch.Tensor, params: MdxParams) -> torch.Tensor:
    """``[B, 2, samples]`` -> ``[B, 4, dim_f, dim_t]``: (left real, left imag, right real, right imag)."""
    window = torch.hann_window(params.n_fft, periodic=True, dtype=chunks.dtype)
    batch = chunks.shape[0]
    spec = torch.stft(chunks.reshape(-1, chunks.shape[-1]), params.n_fft, params.hop_length, window=window,
                      center=True, return_complex=True)
    spec = torch.view_as_real(spec).permute(0, 3, 1, 2)  # [B*2, 2(re/im), bins, frames]
    spec = spec.reshape(batch, 4, spec.shape[-2], spec.shape[-1])[:, :, : params.dim_f]
    spec[:, :, : params.zeroed_bins] = 0
    return spec


def _istft(spec: torch.Tensor, params: MdxParams) -> torch.Tensor:
    """Inverse of ``_stft`` (missing high bins are zero) -> ``[B, 2, samples]``."""
    batch, _, dim_f, frames = spec.shape
    full = torch.zeros(batch, 4, params.n_fft // 2 + 1, frames, dtype=spec.dtype)
    full[:, :, :dim_f] = spec
    full = full.reshape(batch * 2, 2, -1, frames).permute(0, 2, 3, 1).contiguous()
    window = torch.hann_window(params.n_fft, periodic=True, dtype=spec.dtype)
    waves = torch.istft(torch.view_as_complex(full), params.n_fft, params.hop_length, window=window, center=True)
    return waves.reshape(batch, 2, -1)


def _limit_peak(wave: np.ndarray, max_peak: float) -> np.ndarray:
    peak = np.abs(wave).max() if wave.size else 0.0
    return wave * (max_peak / peak) if peak > max_peak else wave


def _as_stereo(waveform: torch.Tensor) -> torch.Tensor:
    if waveform.shape[0] == 1:
        return waveform.repeat(2, 1)
    if waveform.shape[0] != 2:
        raise InputError(f"Vocal separation takes mono or stereo audio; this song has {waveform.shape[0]} channels.")
    return waveform


def demix(mix: np.ndarray, separator: MdxSeparator) -> np.ndarray:
    """MDX demixing of a stereo mix ``[2, T]`` at the model's rate -> the model's stem ``[2, T]``."""
    p = separator.params
    length, trim, chunk = mix.shape[-1], p.trim, p.chunk_size
    gen_size = chunk - 2 * trim
    pad = gen_size + trim - length % gen_size
    mixture = np.concatenate([np.zeros((2, trim), np.float32), mix, np.zeros((2, pad), np.float32)], axis=1)
    step = int((1 - p.overlap) * chunk)
    result = np.zeros_like(mixture)
    divider = np.zeros_like(mixture)
    starts = list(range(0, mixture.shape[-1], step))
    for first in range(0, len(starts), p.batch_size):
        group = starts[first : first + p.batch_size]
        pieces = np.zeros((len(group), 2, chunk), np.float32)
        for row, start in enumerate(group):
            part = mixture[:, start : start + chunk]
            pieces[row, :, : part.shape[-1]] = part
        with torch.no_grad():
            spec = _stft(torch.from_numpy(pieces), p)
            stems = _istft(torch.from_numpy(separator.run(spec.numpy())), p).numpy()
        for row, start in enumerate(group):
            stop = min(start + chunk, mixture.shape[-1])
            window = np.hanning(stop - start).astype(np.float32) if p.overlap else np.ones(stop - start, np.float32)
            result[:, start:stop] += stems[row, :, : stop - start] * window
            divider[:, start:stop] += window
    stem = np.divide(result, divider, out=np.zeros_like(result), where=divider > 0)
    return stem[:, trim : trim + length] * p.compensate


def separate_vocals(waveform: torch.Tensor, sample_rate: int, separator: MdxSeparator) -> tuple[torch.Tensor, int]:
    """Song (any layout/rate accepted by ``prepare_waveform``) -> (vocal stem ``[2, T]`` float32, model rate)."""
    p = separator.params
    stereo = _as_stereo(to_unit_range(as_channels_first(waveform)))
    mix = resample(stereo, int(sample_rate), p.sample_rate).numpy().astype(np.float32)
    if mix.shape[-1] == 0:
        raise InputError("The audio is empty; there is nothing to separate.")
    vocals = _limit_peak(demix(_limit_peak(mix, p.max_peak), separator), p.max_peak)
    return torch.from_numpy(np.ascontiguousarray(vocals, dtype=np.float32)), p.sample_rate
