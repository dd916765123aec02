"""Writing the generated frames as a video file with the song muxed in (PyAV only).

:class:`VideoWriter` takes the frames piece by piece (a clip at a time) and encodes the song alongside,
so writing a whole song holds one piece, not the video; :func:`write_video` writes a video held whole.
By default an H.264 mp4 (CRF 18); :class:`Encoding` also gives the mkv/webm containers, AV1, a CRF, an x264
preset, 10 bits and sRGB colour tags (what ComfyUI's Save Video asks of a video, see docs/comfyui_compat.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from singer_core.errors import InputError

# Sample rates the AAC encoder accepts; anything else is resampled to 48 kHz.
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
OPUS_RATE = 48000  # what webm's Opus audio is encoded at (as ComfyUI does)

# Container name -> FFmpeg muxer; codec name -> encoder and its CRF range; the audio codec each container gets.
CONTAINERS = {"mp4": "mp4", "mkv": "matroska", "webm": "webm"}
ENCODERS = {"h264": "libx264", "av1": "libsvtav1"}
CRF_RANGE = {"h264": (0, 51), "av1": (0, 63)}
# H.264: the pack's setting since its first release (visually lossless for faces); AV1: ComfyUI 0.38 Save Video's.
DEFAULT_CRF = {"h264": 18, "av1": 30}
AUDIO_CODECS = {"mp4": "aac", "mkv": "aac", "webm": "libopus"}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")  # fmt: skip
BIT_DEPTHS = {8: ("rgb24", "yuv420p"), 10: ("rgb48le", "yuv420p10le")}  # input frame format, encoded pixel format
COLOR_SPACES = ("sRGB",)  # the generated frames are sRGB; HDR would need a colour conversion nobody asked for


@dataclass(frozen=True)
class Encoding:
    """How a video is encoded: container, codec, CRF, x264 preset, bit depth, colour tags.

    ``crf=None`` is :data:`DEFAULT_CRF` of the codec; ``preset`` applies to H.264 only and is ignored for AV1,
    as ComfyUI does. ``color_space=None`` keeps the stream untagged (PyAV's default RGB->YUV matrix, what every
    video of this pack was so far); ``"sRGB"`` converts with the BT.709 matrix and tags BT.709 primaries, the
    sRGB transfer and limited range, as ComfyUI 0.38 does for sRGB.
    """

    container: str = "mp4"
    codec: str = "h264"
    crf: float | None = None
    preset: str | None = None
    bit_depth: int = 8
    color_space: str | None = None

    def __post_init__(self) -> None:
        if self.container not in CONTAINERS:
            raise InputError(f"Unknown video container {self.container!r}; choose one of {', '.join(CONTAINERS)}.")
        if self.codec not in ENCODERS:
            raise InputError(f"Unknown video codec {self.codec!r}; choose one of {', '.join(ENCODERS)}.")
        if self.container == "webm" and self.codec != "av1":
            raise InputError("WebM videos need the AV1 codec; choose av1 (or auto) for webm, or another container.")
        low, high = CRF_RANGE[self.codec]
        if self.crf is not None and not low <= self.crf <= high:
            raise InputError(f"crf for {self.codec} must be within {low}..{high} (got {self.crf}).")
        if self.preset is not None and self.preset not in X264_PRESETS:
            raise InputError(f"Unknown H.264 preset {self.preset!r}; choose one of {', '.join(X264_PRESETS)}.")
        if self.bit_depth not in BIT_DEPTHS:
            raise InputError(f"bit_depth must be 8 or 10 (got {self.bit_depth!r}).")
        if self.color_space is not None and self.color_space not in COLOR_SPACES:
            raise InputError(f"The generated frames are sRGB; saving them as {self.color_space!r} would need a colour "
                             "conversion. Choose sRGB or auto.")  # fmt: skip

    def video_options(self) -> dict[str, str]:
        """The encoder's options: CRF (AV1 CRF 0 is SVT-AV1's lossless mode, as in ComfyUI) and the x264 preset."""
        crf = DEFAULT_CRF[self.codec] if self.crf is None else self.crf
        crf_text = str(int(crf)) if float(crf).is_integer() else str(crf)
        options = {"svtav1-params": "lossless=1"} if self.codec == "av1" and crf == 0 else {"crf": crf_text}
        if self.preset is not None and self.codec == "h264":
            options["preset"] = self.preset
        return options


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
    """A video written piece by piece (an H.264 yuv420p mp4 unless ``encoding`` says otherwise); use as a
    context manager.

    ``write(frames)`` encodes ``[n, H, W, 3]`` floats in [0, 1] at once. ``audio`` [channels, samples]
    float in [-1, 1] at ``sample_rate`` (or an audio file's path, decoded as the video advances) is encoded
    alongside (AAC; Opus in webm), up to the video written so far,
    and cut to the video's duration at the end (as the official export does). ``target`` is a path or
    a writable binary file; ``metadata`` values become container tags (non-strings as JSON).
    """

    def __init__(self, target, fps, audio: torch.Tensor | None = None, sample_rate: int | None = None,
                 crf: int = DEFAULT_CRF["h264"], metadata: dict | None = None,
                 encoding: Encoding | None = None) -> None:  # fmt: skip
        import av

        if audio is not None and sample_rate is None and not isinstance(audio, str | Path):
            raise InputError("sample_rate is required when audio is given.")
        self.rate = frame_rate(fps)
        self.encoding = encoding if encoding is not None else Encoding(crf=crf)
        self.frames = 0
        self._audio = None if audio is None else _AudioTrack(audio, sample_rate, AUDIO_CODECS[self.encoding.container])
        self._path = None if hasattr(target, "write") else Path(target)
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        mp4 = self.encoding.container == "mp4"
        options = {"movflags": "use_metadata_tags"} if metadata and mp4 else {}
        target = str(self._path) if self._path is not None else target
        self._container = av.open(target, mode="w", format=CONTAINERS[self.encoding.container], options=options)
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

        pixels = frames_to_uint8(frames) if self.encoding.bit_depth == 8 else frames_to_uint16(frames)
        if self._video is None:
            self._open_streams(*pixels.shape[1:3])
        elif pixels.shape[1:3] != (self._video.height, self._video.width):
            raise InputError(f"All frames must be {self._video.width}x{self._video.height} "
                             f"(got {pixels.shape[2]}x{pixels.shape[1]}).")  # fmt: skip
        source_format, _ = BIT_DEPTHS[self.encoding.bit_depth]
        for image in pixels:
            frame = self._to_yuv(av.VideoFrame.from_ndarray(image, format=source_format))
            self._container.mux(self._video.encode(frame))
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
            raise InputError(f"{self.encoding.codec.upper()} with 4:2:0 colour needs even frame sizes "
                             f"(got {width}x{height}).")  # fmt: skip
        _, pixel_format = BIT_DEPTHS[self.encoding.bit_depth]
        self._video = self._container.add_stream(ENCODERS[self.encoding.codec], rate=self.rate)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, pixel_format
        self._video.options = self.encoding.video_options()
        if self.encoding.color_space is not None:
            _tag_srgb(self._video.codec_context)
        if self._audio is not None:
            self._audio.add_stream(self._container)

    def _to_yuv(self, frame):
        """The encoder's pixel format; with sRGB tags, through the BT.709 matrix the tags announce."""
        _, pixel_format = BIT_DEPTHS[self.encoding.bit_depth]
        if self.encoding.color_space is None:
            return frame.reformat(format=pixel_format)
        frame = frame.reformat(format=pixel_format, dst_colorspace=_BT709)
        _tag_srgb(frame)
        return frame


_BT709 = 1  # AVCOL_SPC_BT709 (the matrix)


def _tag_srgb(target) -> None:
    """BT.709 primaries and matrix, the sRGB transfer (IEC 61966-2-1), limited range: ComfyUI 0.38's sRGB tags."""
    from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc

    target.color_primaries = ColorPrimaries.BT709
    target.color_trc = ColorTrc.IEC61966_2_1
    target.colorspace = _BT709
    target.color_range = ColorRange.MPEG


def frames_to_uint16(frames: torch.Tensor) -> np.ndarray:
    """[T, H, W, 3] float in [0, 1] -> 16-bit RGB (for 10-bit encoding: the float precision survives to YUV)."""
    frames_to_uint8(frames[:0])  # the layout check
    return (frames.detach().float().cpu().clamp(0, 1) * 65535).round().to(torch.int32).numpy().astype(np.uint16)


class _AudioTrack:
    """The song's AAC stream, encoded in step with the video (resampled where AAC needs another rate).

    The song is a ``[channels, samples]`` tensor, or an audio file's path: then it is decoded frame by frame
    as the video advances, so a long song is never held whole (``audio.waveform.iter_audio_file``)."""

    def __init__(self, audio, sample_rate: int | None, codec: str = "aac") -> None:
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
        self.codec, self.fed, self._pending = codec, 0, None
        self.stream = self.resampler = None

    def add_stream(self, container) -> None:
        import av

        if self.codec == "aac":
            rate = self.sample_rate if self.sample_rate in _AAC_RATES else 48000
        else:
            rate = OPUS_RATE
        self.stream = container.add_stream(self.codec, rate=rate)
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
