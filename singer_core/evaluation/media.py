"""Reading the videos to evaluate and pairing generated videos with their references by name.

Frames are decoded with PyAV (the pack's only video library) as RGB uint8; the audio track, when there
is one, with the pack's own audio reader. Frames are yielded one by one so that a long video is never
held in memory as a whole by the frame-wise metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from singer_core.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")


@dataclass(frozen=True)
class VideoPair:
    """One generated video and, when a reference folder was given, the reference of the same name."""

    name: str
    generated: Path
    reference: Path | None


def list_videos(directory: str | Path, role: str) -> dict[str, Path]:
    """Videos of a folder by stem (``clip01.mp4`` -> ``clip01``); ``role`` names the folder in errors."""
    folder = Path(directory)
    if not folder.is_dir():
        raise InputError(f"The {role} folder '{folder}' does not exist. Pass a folder that holds the videos.")
    videos: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            if path.stem in videos:
                raise InputError(f"Two videos named '{path.stem}' in the {role} folder ({videos[path.stem].name}, "
                                 f"{path.name}); rename one so each name is unique.")
            videos[path.stem] = path
    if not videos:
        raise InputError(f"No videos ({', '.join(VIDEO_SUFFIXES)}) in the {role} folder '{folder}'.")
    return videos


def pair_videos(generated_dir: str | Path, reference_dir: str | Path | None = None) -> list[VideoPair]:
    """Pair generated and reference videos by file stem.

    Without a reference folder every generated video is evaluated alone. With one, every generated video
    must have a reference of the same name (a missing one is an error rather than a silently smaller set);
    references without a generated video are ignored.
    """
    generated = list_videos(generated_dir, "generated")
    if reference_dir is None:
        return [VideoPair(name, path, None) for name, path in generated.items()]
    references = list_videos(reference_dir, "reference")
    missing = sorted(set(generated) - set(references))
    if missing:
        raise InputError(f"No reference video for {', '.join(missing)} in '{reference_dir}'. Reference videos "
                         "are paired by file name (clip01.mp4 <-> clip01.mp4); add them or remove the generated ones.")
    return [VideoPair(name, path, references[name]) for name, path in generated.items()]


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of a video as HxWx3 RGB uint8 arrays, in presentation order."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"'{path}' has no video stream.")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as error:
        raise InputError(f"Cannot decode video '{path}': {error}.") from error


def read_frames(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """All frames (or the first ``max_frames``) as [T, H, W, 3] uint8."""
    frames = []
    for frame in iter_frames(path):
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise InputError(f"Video '{path}' has no frames.")
    return np.stack(frames)


def video_fps(path: str | Path) -> float:
    """Frame rate of the first video stream (average rate, falling back to the codec rate)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise InputError(f"Cannot tell the frame rate of '{path}'.")
        return float(rate)


def frame_count(path: str | Path) -> int | None:
    """The container's frame count when it records one (for progress bars), else None."""
    import av

    with av.open(str(path)) as container:
        return container.streams.video[0].frames or None


def frame_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the first video stream."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return int(stream.codec_context.width), int(stream.codec_context.height)


def read_audio_track(path: str | Path) -> tuple[np.ndarray, int] | None:
    """The audio track as mono float32 in [-1, 1] and its sample rate, or None when there is none."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
    from singer_core.audio.waveform import read_audio_file

    waveform, rate = read_audio_file(path)
    return waveform.mean(dim=0).numpy().astype(np.float32), rate
