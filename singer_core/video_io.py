"""Writing the generated frames as an H.264 mp4 with the song muxed in (PyAV only)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from singer_core.errors import InputError

# Sample rates the AAC encoder accepts; anything else is resampled to 48 kHz.
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


def frames_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[T, H, W, 3] float in [0, 1] -> uint8 array, rounding like the official ``clip(x * 255)`` cast."""
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise InputError(f"Video frames must be [frames, height, width, 3] (got {list(frames.shape)}).")
    return (frames.detach().float().cpu().clamp(0, 1) * 255).to(torch.uint8).numpy()


def write_video(
    path: str | Path,
    frames: torch.Tensor,
    fps: int,
    audio: torch.Tensor | None = None,
    sample_rate: int | None = None,
    crf: int = 18,
) -> Path:
    """Write ``frames`` [T, H, W, 3] in [0, 1] as H.264 (yuv420p) at ``fps``.

    ``audio`` [channels, samples] float in [-1, 1] at ``sample_rate`` is encoded as AAC and cut to the
    video's duration (as the official export does). Returns the written path.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = frames_to_uint8(frames)
    height, width = pixels.shape[1:3]
    if height % 2 or width % 2:
        raise InputError(f"H.264 needs even frame sizes (got {width}x{height}).")
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": str(crf)}
        audio_stream = None
        if audio is not None:
            audio_stream, audio_frames = _audio_stream(container, audio, sample_rate, len(pixels) / fps)
        for image in pixels:
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode(None))
        if audio_stream is not None:
            for frame in audio_frames:
                container.mux(audio_stream.encode(frame))
            container.mux(audio_stream.encode(None))
    return path


def _audio_stream(container, audio: torch.Tensor, sample_rate: int | None, duration: float):
    """Add an AAC stream and return it with the ``AudioFrame``s to encode (already resampled)."""
    import av

    if sample_rate is None:
        raise InputError("sample_rate is required when audio is given.")
    waveform = audio.detach().float().cpu()
    if waveform.dim() == 1:
        waveform = waveform[None]
    waveform = waveform[: 2, : int(round(duration * sample_rate))].clamp(-1, 1)
    layout = "mono" if waveform.shape[0] == 1 else "stereo"
    rate = sample_rate if sample_rate in _AAC_RATES else 48000
    stream = container.add_stream("aac", rate=rate)
    stream.layout = layout
    source = av.AudioFrame.from_ndarray(np.ascontiguousarray(waveform.numpy()), format="fltp", layout=layout)
    source.sample_rate = sample_rate
    frame_size = stream.codec_context.frame_size or 1024
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate, frame_size=frame_size)
    frames = [*resampler.resample(source), *resampler.resample(None)]
    return stream, frames
