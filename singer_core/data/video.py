"""Reading any video file with PyAV: probing, 25 fps frames resampled by time stamps, the audio track.

Frame-rate conversion picks, for output frame k (time k / 25 s after the first frame), the source frame whose
presentation time is nearest (ties go to the earlier frame), like ffmpeg's ``fps`` filter with ``round=near``.
This works for any constant or variable frame rate. Frames are turned upright by the stream's display matrix
(phone videos), as players show them. The output covers the video's duration (last time stamp
plus one source frame): ``ceil(duration * 25)`` frames, so a 2 s clip gives 50 frames at any source rate.

The audio is cut to the stream's duration when the header gives one (AAC decoders output whole 1024-sample
frames: the padding after the last real sample is dropped), then aligned to the first video frame: when the
audio stream starts later than the video (stream start times), zeros are put in front; when it starts
earlier, the samples before the first frame are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from singer_core.errors import InputError

_EPS = 1e-6


class VideoFileError(InputError):
    """A video file cannot be used: unreadable, corrupt, no video stream or no audio track."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float  # average source frame rate (informative; resampling uses the time stamps)
    has_audio: bool
    sample_rate: int
    video_start: float  # seconds
    audio_start: float  # seconds (0 when there is no audio)
    audio_duration: float | None = None  # seconds, from the stream header when it has one


def _av():
    import av

    return av


def _start(stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _duration(stream) -> float | None:
    if not stream.duration or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def probe_video(path: str | Path) -> VideoInfo:
    """Open the container and describe it; raises ``VideoFileError`` (reason ``corrupt``) naming the file."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise VideoFileError(f"Video file not found: {path}.", "corrupt")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoFileError(f"{path} has no video stream; pass a video file (mp4, mov, mkv, webm).",
                                     "corrupt")
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            rate = video.average_rate or video.guessed_rate or 0
            return VideoInfo(
                path=path,
                width=int(video.codec_context.width),
                height=int(video.codec_context.height),
                fps=float(rate),
                has_audio=audio is not None,
                sample_rate=int(audio.rate or audio.codec_context.sample_rate) if audio is not None else 0,
                video_start=_start(video),
                audio_start=_start(audio) if audio is not None else 0.0,
                audio_duration=_duration(audio) if audio is not None else None,
            )
    except av.error.FFmpegError as error:
        raise VideoFileError(f"Cannot read video file {path}: {error}. The file is corrupt or not a video; "
                             "re-export or re-download it.", "corrupt") from error


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """Apply the stream's display rotation (PyAV's ``frame.rotation``: degrees counterclockwise, e.g. -90 for a
    phone video shot upright) the way players and ffmpeg's autorotate do."""
    turns = int(round(rotation / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def frames_at_fps(path: str | Path, fps: int = 25) -> Iterator[np.ndarray]:
    """HxWx3 uint8 RGB frames at ``fps``, resampled by presentation time stamps (see the module docstring)."""
    av = _av()
    path = Path(path)
    emitted = 0
    previous: tuple[float, np.ndarray] | None = None
    last_step = 0.0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            origin = None
            rate = float(stream.average_rate or stream.guessed_rate or fps)
            for index, frame in enumerate(container.decode(stream)):
                time = frame.time if frame.time is not None else index / rate
                origin = time if origin is None else origin
                time -= origin
                if previous is not None:
                    time = max(time, previous[0])
                    last_step = time - previous[0] or last_step
                    midpoint = (previous[0] + time) / 2
                    while emitted / fps < midpoint - _EPS:
                        yield previous[1]
                        emitted += 1
                previous = (time, upright(frame.to_ndarray(format="rgb24"), frame.rotation or 0))
    except av.error.FFmpegError as error:
        raise VideoFileError(f"Cannot decode video file {path}: {error}. The file is corrupt or truncated; "
                             "re-export or re-download it.", "corrupt") from error
    if previous is None:
        raise VideoFileError(f"Video file {path} contains no frames.", "corrupt")
    end = previous[0] + (last_step or 1.0 / rate)
    while emitted / fps < end - _EPS:
        yield previous[1]
        emitted += 1


def read_audio_track(info: VideoInfo) -> tuple[torch.Tensor, int]:
    """The first audio stream ``[channels, samples]`` float32, aligned to the first video frame."""
    from singer_core.audio.waveform import read_audio_file

    if not info.has_audio:
        raise VideoFileError(f"{info.path} has no audio track; training needs the singing voice. Use a video "
                             "with sound (or mux the song in with ffmpeg).", "no_audio")
    try:
        waveform, rate = read_audio_file(info.path)
    except InputError as error:
        raise VideoFileError(f"Cannot decode the audio track of {info.path}: {error}", "corrupt") from error
    if info.audio_duration is not None:
        waveform = waveform[:, : int(round(info.audio_duration * rate))]
    shift = int(round((info.audio_start - info.video_start) * rate))
    if shift > 0:
        waveform = torch.nn.functional.pad(waveform, (shift, 0))
    elif shift < 0:
        waveform = waveform[:, -shift:]
    return waveform.contiguous(), rate

