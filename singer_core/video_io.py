"""Writing the generated frames as an H.264 mp4 with the song muxed in (PyAV only).

:class:`VideoWriter` takes the frames piece by piece (a clip at a time) and encodes the song alongside,
so writing a whole song holds one piece, not the video; :func:`write_video` writes a video held whole.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from singer_core.errors import InputError

# Sample rates the AAC encoder accepts; anything else is resampled to 48 kHz.
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


def frames_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[T, H, W, 3] float in [0, 1] -> uint8 array, rounding like the official ``clip(x * 255)`` cast.
    uint8 frames (a resumable render's pieces, already converted: ``singer_core.pipeline.resume``) pass as
    they are."""
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise InputError(f"Video frames must be [frames, height, width, 3] (got {list(frames.shape)}).")
    if frames.dtype == torch.uint8:
        return frames.detach().cpu().contiguous().numpy()
    return (frames.detach().float().cpu().clamp(0, 1) * 255).to(torch.uint8).contiguous().numpy()


def frame_rate(fps: int | float | Fraction) -> Fraction:
    """Whole rates exactly; other floats to 1/1000 (ComfyUI's own convention for its FLOAT fps)."""
    if isinstance(fps, (int, Fraction)) and not isinstance(fps, bool):
        rate = Fraction(fps)
    elif isinstance(fps, float):
        rate = Fraction(round(fps * 1000), 1000)
    else:
        raise InputError(f"fps must be a number (got {fps!r}).")
    if rate <= 0:
        raise InputError(f"fps must be above 0 (got {fps!r}).")
    return rate


class VideoWriter:
    """An H.264 (yuv420p) mp4 written piece by piece; use as a context manager.

    ``write(frames)`` encodes ``[n, H, W, 3]`` floats in [0, 1] at once. ``audio`` [channels, samples]
    float in [-1, 1] at ``sample_rate`` (or an audio file's path, decoded as the video advances) is encoded
    as AAC alongside, up to the video written so far,
    and cut to the video's duration at the end (as the official export does). ``target`` is a path or
    a writable binary file; ``metadata`` values become container tags (non-strings as JSON).
    """

    def __init__(self, target, fps, audio: torch.Tensor | None = None, sample_rate: int | None = None,
                 crf: int = 18, metadata: dict | None = None) -> None:  # fmt: skip
        import av

        if audio is not None and sample_rate is None and not isinstance(audio, str | Path):
            raise InputError("sample_rate is required when audio is given.")
        self.rate = frame_rate(fps)
        self.crf, self.frames = crf, 0
        self._audio = None if audio is None else _AudioTrack(audio, sample_rate)
        self._path = None if hasattr(target, "write") else Path(target)
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        options = {"movflags": "use_metadata_tags"} if metadata else {}
        target = str(self._path) if self._path is not None else target
        self._container = av.open(target, mode="w", format="mp4", options=options)
        for key, value in (metadata or {}).items():
            self._container.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        self._video = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
            return
        self._container.close()  # a failed write leaves no half-written file behind
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    def write(self, frames: torch.Tensor) -> None:
        """Encode ``frames`` [n, H, W, 3] (and the song up to their end)."""
        import av

        pixels = frames_to_uint8(frames)
        if self._video is None:
            self._open_streams(*pixels.shape[1:3])
        elif pixels.shape[1:3] != (self._video.height, self._video.width):
            raise InputError(f"All frames must be {self._video.width}x{self._video.height} "
                             f"(got {pixels.shape[2]}x{pixels.shape[1]}).")  # fmt: skip
        for image in pixels:
            self._container.mux(self._video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        self.frames += len(pixels)
        if self._audio is not None:
            self._audio.encode_until(self._container, self.frames / self.rate)

    def close(self) -> None:
        """Flush the encoders (the song is cut to the video's duration) and finish the file."""
        if self._video is None:
            self._container.close()
            if self._path is not None:
                self._path.unlink(missing_ok=True)
            raise InputError("No video frames were written.")
        self._container.mux(self._video.encode(None))
        if self._audio is not None:
            self._audio.finish(self._container, self.frames / self.rate)
        self._container.close()

    def _open_streams(self, height: int, width: int) -> None:
        if height % 2 or width % 2:
            raise InputError(f"H.264 needs even frame sizes (got {width}x{height}).")
        self._video = self._container.add_stream("libx264", rate=self.rate)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
        self._video.options = {"crf": str(self.crf)}
        if self._audio is not None:
            self._audio.add_stream(self._container)


class _AudioTrack:
    """The song's AAC stream, encoded in step with the video (resampled where AAC needs another rate).

    The song is a ``[channels, samples]`` tensor, or an audio file's path: then it is decoded frame by frame
    as the video advances, so a long song is never held whole (``audio.waveform.iter_audio_file``)."""

    def __init__(self, audio, sample_rate: int | None) -> None:
        if isinstance(audio, str | Path):
            from singer_core.audio.waveform import audio_file_info, iter_audio_file

            self.sample_rate, channels = audio_file_info(audio)
            self._chunks = iter_audio_file(audio)
        else:
            waveform = audio.detach().float().cpu()
            if waveform.dim() == 1:
                waveform = waveform[None]
            self.sample_rate, channels = int(sample_rate), waveform.shape[0]
            self._chunks = iter([waveform.numpy()])
        self.layout = "mono" if channels == 1 else "stereo"
        self.fed, self._pending = 0, None
        self.stream = self.resampler = None

    def add_stream(self, container) -> None:
        import av

        rate = self.sample_rate if self.sample_rate in _AAC_RATES else 48000
        self.stream = container.add_stream("aac", rate=rate)
        self.stream.layout = self.layout
        frame_size = self.stream.codec_context.frame_size or 1024
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=rate, frame_size=frame_size)

    def _take(self, count: int) -> np.ndarray | None:
        """Up to ``count`` samples of the song (first two channels, clamped to [-1, 1]); None at its end."""
        pieces, held = [], 0
        while held < count:
            if self._pending is None:
                self._pending = next(self._chunks, None)
                if self._pending is None:
                    break
                self._pending = np.clip(np.asarray(self._pending, dtype=np.float32)[:2], -1, 1)
            piece = self._pending[:, : count - held]
            self._pending = self._pending[:, piece.shape[1] :] if piece.shape[1] < self._pending.shape[1] else None
            pieces.append(piece)
            held += piece.shape[1]
        return np.ascontiguousarray(np.concatenate(pieces, axis=1)) if pieces else None

    def encode_until(self, container, seconds: Fraction) -> None:
        """Feed the song up to ``seconds`` (never past its end) to the encoder."""
        import av

        stop = int(round(seconds * self.sample_rate))
        if stop <= self.fed:
            return
        chunk = self._take(stop - self.fed)
        if chunk is None or not chunk.shape[1]:
            return
        source = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self.layout)
        source.sample_rate, source.pts, source.time_base = self.sample_rate, self.fed, Fraction(1, self.sample_rate)
        self.fed += chunk.shape[1]
        for frame in self.resampler.resample(source):
            container.mux(self.stream.encode(frame))

    def finish(self, container, seconds: Fraction) -> None:
        self.encode_until(container, seconds)
        for frame in self.resampler.resample(None):
            container.mux(self.stream.encode(frame))
        container.mux(self.stream.encode(None))


def write_video(
    path: str | Path,
    frames: torch.Tensor,
    fps: int,
    audio: torch.Tensor | None = None,
    sample_rate: int | None = None,
    crf: int = 18,
) -> Path:
    """Write ``frames`` [T, H, W, 3] in [0, 1] as H.264 (yuv420p) at ``fps`` (see :class:`VideoWriter`).
    Returns the written path."""
    frames_to_uint8(frames[:0])  # the layout check, before a file is created
    with VideoWriter(path, fps, audio, sample_rate, crf) as writer:
        writer.write(frames)
    return Path(path)
