"""One video -> one dataset entry (accepted: frames + features; rejected: the reasons).

Order, cheapest first, so a clip that is turned away costs little: probe the file, read the audio track,
decode the video once for the face analysis (first pass), run the checks; only an accepted clip pays for
vocal separation, wav2vec2 and the second decoding pass that crops and stores the frames.

The audio path is the pack's own, identical to inference (``singer_core.audio``): optional Kim_Vocal_2
separation of the mix, 16 kHz mono, wav2vec2 features of all layers interpolated to one row per 25 fps
frame. As in Hallo's data preparation the whole track is encoded at once without the inference's padding
to a multiple of the clip length; video and audio are then cut to the shorter of the two.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from singer_core.audio.features import FPS, extract_audio_features, frame_count
from singer_core.audio.separator import separate_vocals
from singer_core.audio.waveform import WAV2VEC_SAMPLE_RATE, prepare_waveform
from singer_core.errors import InputError
from singer_core.face.masks import check_output_size

from . import format as fmt
from .faces import FaceTrack, analyse_frame, crop_window, face_conditions, face_embedding
from .quality import QualitySettings, RejectReason, voiced_share
from .video import VideoFileError, VideoInfo, frames_at_fps, probe_video, read_audio_track


@dataclass(frozen=True)
class PrepareSettings:
    """Everything that changes the prepared data (recorded in dataset.json; a re-run must use the same)."""

    size: int = 512
    crop_ratio: float = 0.8
    detect_every: int = 5
    vocal_separation: bool = True
    face_expand_ratio: float = 1.2
    jpeg_quality: int = fmt.JPEG_QUALITY
    quality: QualitySettings = field(default_factory=QualitySettings)

    def __post_init__(self) -> None:
        check_output_size(self.size, self.size)
        if not 0.0 < self.crop_ratio <= 1.0:
            raise InputError(f"--crop-ratio must be in (0, 1] (got {self.crop_ratio}); 0.8 is the paper's.")
        if self.detect_every < 1:
            raise InputError(f"--detect-every must be at least 1 (got {self.detect_every}).")
        if not 1 <= self.jpeg_quality <= 100 or self.face_expand_ratio <= 0:
            raise InputError(f"JPEG quality must be 1..100 and the face expand ratio positive: {self}.")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["quality"] = self.quality.to_dict()
        return data


@dataclass
class Outcome:
    """What happened to one input (returned by workers to the main process)."""

    id: str
    source: str
    status: str  # accepted | rejected | skipped-accepted | skipped-rejected
    reasons: list[str] = field(default_factory=list)
    message: str = ""
    frames: int = 0


class Rejected(Exception):
    def __init__(self, reasons: list[RejectReason], message: str, details: dict | None = None):
        super().__init__(message)
        self.reasons = [RejectReason(r).value for r in reasons]
        self.details = details or {}


def video_id(path: Path) -> str:
    """File stem (safe characters) + 8 hex digits of the absolute path's hash: stable and collision-free."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:64] or "video"
    return f"{stem}-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"


def analyse_faces(info: VideoInfo, models, settings: PrepareSettings) -> FaceTrack:
    track = FaceTrack()
    for index, rgb in enumerate(frames_at_fps(info.path, FPS)):
        if index % settings.detect_every == 0:
            analyse_frame(models.face, rgb, track, settings.quality.second_face_area)
        track.frames += 1
    return track


def check_faces(track: FaceTrack, q: QualitySettings, crop_side: int | None) -> tuple[list, list, dict]:
    """Face checks -> (reasons, messages, measured values)."""
    reasons, messages = [], []
    share = track.with_face / max(track.sampled, 1)
    several = track.several / max(track.sampled, 1)
    height = track.median_face_height()
    values = {"face_share": round(share, 4), "several_faces_share": round(several, 4),
              "face_height_px": round(height, 2), "sharpness": round(track.median_sharpness(), 3)}
    if share < q.min_face_share:
        reasons.append(RejectReason.NO_FACE)
        messages.append(f"a face was found in {track.with_face} of {track.sampled} sampled frames "
                        f"(at least {q.min_face_share:.0%} needed)")
        return reasons, messages, values
    if several > q.max_several_share:
        reasons.append(RejectReason.SEVERAL_FACES)
        messages.append(f"several faces in {track.several} of {track.sampled} sampled frames; keep one singer "
                        "per clip (crop the video around them)")
    relative = height / crop_side if crop_side else 0.0
    values["face_height_share"] = round(relative, 4)
    if height < q.min_face_pixels or relative < q.min_face_size:
        reasons.append(RejectReason.FACE_TOO_SMALL)
        messages.append(f"face too small: {height:.0f} px high, {relative:.0%} of the crop (at least "
                        f"{q.min_face_pixels} px and {q.min_face_size:.0%} needed)")
    if track.median_sharpness() < q.min_sharpness:
        reasons.append(RejectReason.BLURRY)
        messages.append(f"face too blurry: sharpness {track.median_sharpness():.1f} (variance of the Laplacian; "
                        f"at least {q.min_sharpness} needed)")
    return reasons, messages, values


def check_lengths(video_frames: int, audio_frames: int, q: QualitySettings) -> tuple[list, list]:
    reasons, messages = [], []
    if abs(video_frames - audio_frames) > q.max_length_mismatch:
        reasons.append(RejectReason.LENGTH_MISMATCH)
        messages.append(f"video has {video_frames} frames at 25 fps but the audio covers {audio_frames} "
                        f"(more than {q.max_length_mismatch} apart)")
    if min(video_frames, audio_frames) < q.min_frames:
        reasons.append(RejectReason.TOO_SHORT)
        messages.append(f"only {min(video_frames, audio_frames)} frames (at least {q.min_frames} needed)")
    return reasons, messages


def check_silence(wave16k, q: QualitySettings, what: str) -> tuple[list, list, dict]:
    share, level = voiced_share(wave16k, WAV2VEC_SAMPLE_RATE, FPS, q.silence_db)
    values = {f"voiced_share_{what}": round(share, 4), f"level_db_{what}": round(level, 2)}
    if share < q.min_voiced_share:
        return [RejectReason.SILENCE], [f"the {what} is silent: {share:.0%} of frames above {q.silence_db} dBFS "
                                        f"(at least {q.min_voiced_share:.0%} needed)"], values
    return [], [], values


def encode_frames(info: VideoInfo, window, count: int, settings: PrepareSettings) -> list[bytes]:
    """Second pass: crop, resize (PIL bilinear, like the reference image) and JPEG-encode the first ``count``."""
    x1, y1, x2, y2 = window
    jpegs = []
    for index, rgb in enumerate(frames_at_fps(info.path, FPS)):
        if index >= count:
            break
        crop = Image.fromarray(np.ascontiguousarray(rgb[y1:y2, x1:x2]))
        resized = np.asarray(crop.resize((settings.size, settings.size), Image.BILINEAR))
        jpegs.append(fmt.encode_jpeg(resized, settings.jpeg_quality))
    if len(jpegs) != count:
        raise VideoFileError(f"{info.path} gave {len(jpegs)} frames on the second pass, {count} on the first.",
                             "corrupt")
    return jpegs


def vocals_16k(waveform, rate, models):
    """16 kHz mono of the separated vocals (Kim_Vocal_2, as inference), or ``None`` without a separator."""
    if models.separator is None:
        return None
    vocals, vocal_rate = separate_vocals(waveform, rate, models.separator)
    return prepare_waveform(vocals, vocal_rate)


def prepare_video(path: Path, out_root: Path, models, settings: PrepareSettings) -> Outcome:
    """Prepare one video into ``out_root/videos/<id>/``; never raises for a bad video (it is rejected)."""
    path = Path(path).resolve()
    ident = video_id(path)
    directory = out_root / fmt.VIDEOS_DIR / ident
    size_bytes = path.stat().st_size if path.is_file() else -1
    try:
        record = _prepare(path, ident, size_bytes, models, settings, directory)
    except VideoFileError as error:
        return _reject(directory, ident, path, size_bytes, Rejected([RejectReason(error.reason)], str(error)))
    except Rejected as rejection:
        return _reject(directory, ident, path, size_bytes, rejection)
    return Outcome(ident, str(path), "accepted", frames=record.frames)


@dataclass
class Screened:
    """A video that passed the quality filter, with what the checks measured."""

    info: VideoInfo
    waveform: torch.Tensor  # the audio track, source rate, aligned to the first frame
    rate: int
    mix16k: torch.Tensor
    track: FaceTrack
    window: tuple[int, int, int, int]
    values: dict


def screen(path: Path, models, settings: PrepareSettings) -> Screened:
    """Probe, read the audio, analyse the faces and run every check; raises ``Rejected`` with all failures."""
    q = settings.quality
    info = probe_video(path)
    waveform, rate = read_audio_track(info)
    mix16k = prepare_waveform(waveform, rate)
    audio_frames = frame_count(mix16k.shape[0], WAV2VEC_SAMPLE_RATE, FPS)
    track = analyse_faces(info, models, settings)
    reasons, messages = check_lengths(track.frames, audio_frames, q)
    window = crop_window(track, settings.crop_ratio) if track.ovals else None
    face_reasons, face_messages, values = check_faces(track, q, window[2] - window[0] if window else None)
    silence_reasons, silence_messages, loudness = check_silence(mix16k, q, "mix")
    values.update(loudness, video_frames=track.frames, audio_frames=audio_frames)
    reasons, messages = reasons + face_reasons + silence_reasons, messages + face_messages + silence_messages
    if reasons:
        raise Rejected(reasons, f"{path.name}: " + "; ".join(messages), values)
    return Screened(info, waveform, rate, mix16k, track, window, values)


def voice_16k(path: Path, screened: Screened, models, q: QualitySettings) -> torch.Tensor:
    """The 16 kHz signal the features are computed from: the separated vocals (checked for silence again)
    when a separator is loaded, else the mix."""
    wave16k = vocals_16k(screened.waveform, screened.rate, models)
    if wave16k is None:
        return screened.mix16k
    reasons, messages, loudness = check_silence(wave16k, q, "vocals")
    screened.values.update(loudness)
    if reasons:
        raise Rejected(reasons, f"{path.name}: " + "; ".join(messages), screened.values)
    return wave16k


def _prepare(path: Path, ident: str, size_bytes: int, models, settings: PrepareSettings,
             directory: Path) -> fmt.VideoRecord:
    screened = screen(path, models, settings)
    track, window, info = screened.track, screened.window, screened.info
    wave16k = voice_16k(path, screened, models, settings.quality)
    features = extract_audio_features(wave16k, models.wav2vec, clip_length=0).embeddings.numpy()
    count = min(track.frames, features.shape[0])
    conditions = face_conditions(track, window, settings.size, settings.face_expand_ratio)
    jpegs = encode_frames(info, window, count, settings)
    record = fmt.VideoRecord(
        id=ident, source=str(path), source_bytes=size_bytes, frames=count, fps=FPS, size=settings.size,
        audio_layers=int(features.shape[1]), audio_hidden=int(features.shape[2]),
        vocal_separation=models.separator is not None, crop_box=list(window), face_box=conditions.face_box,
        lip_box=conditions.lip_box, source_fps=round(info.fps, 4), source_width=track.width,
        source_height=track.height, source_sample_rate=screened.rate, video_frames=track.frames,
        audio_frames=screened.values["audio_frames"], quality=screened.values,
    )
    data = fmt.VideoFeatures(features[:count], face_embedding(models.face, track), conditions.face_region,
                             conditions.full, conditions.face, conditions.lip, wave16k.numpy())
    fmt.write_video(directory, record, jpegs, data)
    return record


def _reject(directory: Path, ident: str, path: Path, size_bytes: int, rejection: Rejected) -> Outcome:
    (directory / fmt.RECORD_FILE).unlink(missing_ok=True)
    fmt.write_rejection(directory, fmt.Rejection(ident, str(path), rejection.reasons, str(rejection), size_bytes,
                                                 rejection.details))
    return Outcome(ident, str(path), "rejected", rejection.reasons, str(rejection))


def reject_error(path: Path, out_root: Path, error: BaseException) -> Outcome:
    """An unexpected failure while preparing ``path``: recorded (reason ``error``), retried on the next run."""
    path = Path(path).resolve()
    ident = video_id(path)
    size_bytes = path.stat().st_size if path.is_file() else -1
    message = f"{path.name}: unexpected {type(error).__name__}: {error}"
    return _reject(out_root / fmt.VIDEOS_DIR / ident, ident, path, size_bytes, Rejected([RejectReason.ERROR], message))
