"""The SINGER training-dataset format, version 1: what ``python -m singer_core.data prepare`` writes and what
the training loop reads. Safetensors and JSON only (no pickles); documented in ``docs/dataset_format.md``.

Layout::

    DATASET/
      dataset.json                  DatasetIndex: format name + version, settings, accepted videos, rejected ones
      videos/<id>/record.json       VideoRecord of one accepted video (written last: its presence = finished)
      videos/<id>/frames.safetensors    every 25 fps face-cropped frame as a JPEG, concatenated (see below)
      videos/<id>/features.safetensors  audio features, face embedding, face region, mask pyramids, waveform
      videos/<id>/rejected.json     Rejection of a video the quality filter (or a decoding error) turned away

Frames are stored as JPEG (quality ``JPEG_QUALITY``, 4:4:4 chroma) bytes, all frames of a video concatenated
in one uint8 tensor ``jpeg`` with ``offsets`` [F + 1] (int64): frame i is ``jpeg[offsets[i]:offsets[i+1]]``.
Reading N consecutive frames is one contiguous slice of the memory-mapped file plus N JPEG decodes. Why not
raw uint8: a 512x512 frame is 768 KiB raw against ~50-90 KiB as JPEG q95 (measured in docs/dataset_format.md),
and the source videos are lossy already; why not PNG: 5-8x larger and several times slower to decode.

``features.safetensors`` tensors (F = frames of the video, S = the training size, L/C = wav2vec2 layers/width):

=====================  ==================  ========  =============================================================
name                   shape               dtype     meaning
=====================  ==================  ========  =============================================================
audio_features         [F, L, C]           float32   every wav2vec2 layer's output, one row per video frame
face_embedding         [512]               float32   raw ArcFace (glintr100) embedding of the largest face
face_region            [S, S]              uint8     face-locator input x 255 (0/255 inside/outside, bilinear edges)
full_mask_<k>          [1, h_k * w_k]      float32   pose/background attention mask at latent level k (S/8 .. S/64)
face_mask_<k>          [1, h_k * w_k]      float32   face (without lips) attention mask at level k
lip_mask_<k>           [1, h_k * w_k]      float32   lip attention mask at level k
waveform               [samples]           float32   16 kHz mono audio the features were computed from
=====================  ==================  ========  =============================================================

Row i of ``audio_features`` belongs to frame i (time i / 25 s); both are cut to the same count F.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from singer_core.errors import InputError

FORMAT_NAME = "singer-dataset"
FORMAT_VERSION = 1
INDEX_FILE = "dataset.json"
VIDEOS_DIR = "videos"
RECORD_FILE = "record.json"
REJECTED_FILE = "rejected.json"
FRAMES_FILE = "frames.safetensors"
FEATURES_FILE = "features.safetensors"
JPEG_QUALITY = 95
FPS = 25
SAMPLE_RATE = 16000
MASK_KINDS = ("full", "face", "lip")
MASK_LEVELS = 4
AUDIO_WINDOW_RADIUS = 2  # frames i-2 .. i+2, as the official dataset and inference


class DatasetFormatError(InputError):
    """A dataset folder is missing, incomplete, or of another format/version."""


# ---------------------------------------------------------------------------------------------- records


@dataclass
class VideoRecord:
    """One accepted video. Paths inside are relative to the video's folder ``videos/<id>/``."""

    id: str
    source: str  # absolute path of the input video
    source_bytes: int  # size of the input file when prepared (resume check)
    frames: int  # F: stored frames = rows of audio_features
    fps: int
    size: int  # frames are size x size
    audio_layers: int
    audio_hidden: int
    vocal_separation: bool
    crop_box: list[int]  # (x1, y1, x2, y2) in source pixels: the window that became the frame
    face_box: list[float]  # union of the face (oval) boxes over the video, output pixels
    lip_box: list[float]  # union of the lip boxes, output pixels
    source_fps: float
    source_width: int
    source_height: int
    source_sample_rate: int
    video_frames: int  # 25 fps frames the video gave before cutting to the audio
    audio_frames: int  # 25 fps frames the audio covers
    quality: dict = field(default_factory=dict)  # measured values of the quality checks
    frames_file: str = FRAMES_FILE
    features_file: str = FEATURES_FILE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VideoRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Rejection:
    """A video that was not used: ``reasons`` are codes of ``RejectReason``; ``message`` says why in words."""

    id: str
    source: str
    reasons: list[str]
    message: str
    source_bytes: int = -1
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Rejection:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class DatasetIndex:
    """``dataset.json``: the dataset as a whole. Rebuilt from the per-video files at the end of every run."""

    size: int
    fps: int = FPS
    sample_rate: int = SAMPLE_RATE
    settings: dict = field(default_factory=dict)  # preparation settings (crop ratio, thresholds, models)
    videos: list[VideoRecord] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "version": self.version,
            "size": self.size,
            "fps": self.fps,
            "sample_rate": self.sample_rate,
            "settings": self.settings,
            "videos": [v.to_dict() for v in self.videos],
            "rejected": [r.to_dict() for r in self.rejected],
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "dataset.json") -> DatasetIndex:
        if data.get("format") != FORMAT_NAME:
            raise DatasetFormatError(f"{where} is not a SINGER dataset (format {data.get('format')!r}, expected "
                                     f"{FORMAT_NAME!r}); prepare one with `python -m singer_core.data prepare`.")
        if data.get("version") != FORMAT_VERSION:
            raise DatasetFormatError(f"{where} has dataset format version {data.get('version')}, this code reads "
                                     f"version {FORMAT_VERSION}; prepare the dataset again with this version.")
        return cls(
            size=int(data["size"]),
            fps=int(data["fps"]),
            sample_rate=int(data["sample_rate"]),
            settings=dict(data.get("settings", {})),
            videos=[VideoRecord.from_dict(v) for v in data.get("videos", [])],
            rejected=[Rejection.from_dict(r) for r in data.get("rejected", [])],
        )


# ---------------------------------------------------------------------------------------------- writing


def write_json(path: Path, data: dict) -> None:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a JSON file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def mask_key(kind: str, level: int) -> str:
    return f"{kind}_mask_{level}"


def encode_jpeg(frame: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """HxWx3 uint8 RGB -> JPEG bytes (4:4:4, no chroma subsampling: the lips' colour edges stay sharp)."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality),
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(frame[:, :, ::-1]), params)
    if not ok:
        raise DatasetFormatError("JPEG encoding of a frame failed.")
    return data.tobytes()


def decode_jpeg(data: np.ndarray) -> np.ndarray:
    """JPEG bytes (uint8 array) -> HxWx3 uint8 RGB."""
    import cv2

    image = cv2.imdecode(np.ascontiguousarray(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetFormatError("A stored frame is not a readable JPEG; prepare the video again.")
    return np.ascontiguousarray(image[:, :, ::-1])


def write_frames(path: Path, jpegs: list[bytes], size: int, quality: int = JPEG_QUALITY) -> None:
    """All frames of one video (JPEG bytes in order) -> ``frames.safetensors`` (``jpeg`` + ``offsets``)."""
    lengths = np.array([len(j) for j in jpegs], dtype=np.int64)
    offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(lengths)])
    blob = np.frombuffer(b"".join(jpegs), dtype=np.uint8) if jpegs else np.zeros(0, np.uint8)
    metadata = {"format": FORMAT_NAME, "version": str(FORMAT_VERSION), "codec": "jpeg", "quality": str(quality),
                "size": str(size)}
    _save_atomic({"jpeg": blob, "offsets": offsets}, path, metadata)


@dataclass
class VideoFeatures:
    """Everything of ``features.safetensors`` for one video, as arrays (see the module table)."""

    audio_features: np.ndarray  # [F, L, C] float32
    face_embedding: np.ndarray  # [512] float32
    face_region: np.ndarray  # [S, S] uint8
    full_mask: tuple[np.ndarray, ...]  # 4 x [1, hw] float32
    face_mask: tuple[np.ndarray, ...]
    lip_mask: tuple[np.ndarray, ...]
    waveform: np.ndarray  # [samples] float32, 16 kHz

    def tensors(self) -> dict[str, np.ndarray]:
        out = {
            "audio_features": np.ascontiguousarray(self.audio_features, dtype=np.float32),
            "face_embedding": np.ascontiguousarray(self.face_embedding, dtype=np.float32).reshape(-1),
            "face_region": np.ascontiguousarray(self.face_region, dtype=np.uint8),
            "waveform": np.ascontiguousarray(self.waveform, dtype=np.float32).reshape(-1),
        }
        for kind in MASK_KINDS:
            levels = getattr(self, f"{kind}_mask")
            if len(levels) != MASK_LEVELS:
                raise DatasetFormatError(f"{kind} mask has {len(levels)} levels, expected {MASK_LEVELS}.")
            for level, mask in enumerate(levels):
                out[mask_key(kind, level)] = np.ascontiguousarray(mask, dtype=np.float32).reshape(1, -1)
        return out


def write_features(path: Path, features: VideoFeatures) -> None:
    _save_atomic(features.tensors(), path, {"format": FORMAT_NAME, "version": str(FORMAT_VERSION)})


def _save_atomic(tensors: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def write_video(directory: Path, record: VideoRecord, jpegs: list[bytes], features: VideoFeatures) -> None:
    """Write one accepted video's folder; ``record.json`` goes last, so its presence means complete."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if len(jpegs) != record.frames or features.audio_features.shape[0] != record.frames:
        raise DatasetFormatError(f"video {record.id}: {len(jpegs)} frames and {features.audio_features.shape[0]} "
                                 f"audio rows, record says {record.frames}.")
    (directory / REJECTED_FILE).unlink(missing_ok=True)
    write_frames(directory / record.frames_file, jpegs, record.size)
    write_features(directory / record.features_file, features)
    write_json(directory / RECORD_FILE, record.to_dict())


def write_rejection(directory: Path, rejection: Rejection) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / REJECTED_FILE, rejection.to_dict())


def write_index(root: Path, index: DatasetIndex) -> None:
    write_json(Path(root) / INDEX_FILE, index.to_dict())


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class MaskLevels:
    """The three attention masks, each 4 levels of ``[1, h*w]`` float32 in [0, 1] (pipeline layout)."""

    full: tuple[torch.Tensor, ...]
    face: tuple[torch.Tensor, ...]
    lip: tuple[torch.Tensor, ...]


@dataclass
class ClipSample:
    """``count`` consecutive frames from ``start`` with everything the model needs for them.

    pixels [N, 3, S, S] in [-1, 1]; audio_windows [N, 5, L, C] (frame i gets rows i-2..i+2, clamped);
    face_embedding [512]; face_region [3, S, S] in [0, 1]; masks: 4 levels of [1, h*w] (one frame; repeat
    over frames as the pipeline does).
    """

    start: int
    pixels: torch.Tensor
    audio_windows: torch.Tensor
    face_embedding: torch.Tensor
    face_region: torch.Tensor
    masks: MaskLevels


class VideoData:
    """Random access to one prepared video. Files are memory-mapped; nothing is read before it is asked for."""

    def __init__(self, directory: str | Path, record: VideoRecord | None = None):
        self.directory = Path(directory)
        if record is None:
            record_path = self.directory / RECORD_FILE
            if not record_path.is_file():
                raise DatasetFormatError(f"{record_path} is missing: the video folder is incomplete; run "
                                         "`python -m singer_core.data prepare` again to finish it.")
            record = VideoRecord.from_dict(read_json(record_path))
        self.record = record
        self._offsets: np.ndarray | None = None
        self._static: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.record.frames

    def _check_range(self, start: int, count: int) -> None:
        if count < 0 or start < 0 or start + count > self.record.frames:
            raise IndexError(f"frames {start}..{start + count - 1} out of range for video {self.record.id} "
                             f"({self.record.frames} frames)")

    def _open(self, name: str):
        path = self.directory / name
        if not path.is_file():
            raise DatasetFormatError(f"{path} is missing; prepare the video again.")
        return safe_open(str(path), framework="numpy")

    def frames(self, start: int, count: int) -> np.ndarray:
        """Frames ``start .. start+count-1`` as uint8 RGB ``[count, S, S, 3]``."""
        self._check_range(start, count)
        if count == 0:
            return np.zeros((0, self.record.size, self.record.size, 3), np.uint8)
        with self._open(self.record.frames_file) as handle:
            if self._offsets is None:
                self._offsets = handle.get_tensor("offsets")
            lo, hi = int(self._offsets[start]), int(self._offsets[start + count])
            blob = handle.get_slice("jpeg")[lo:hi]
        bounds = self._offsets[start : start + count + 1] - lo
        return np.stack([decode_jpeg(blob[bounds[i] : bounds[i + 1]]) for i in range(count)])

    def pixel_values(self, start: int, count: int) -> torch.Tensor:
        """Frames as the model input ``[count, 3, S, S]`` float32 in [-1, 1] (official ToTensor + Normalize 0.5)."""
        frames = torch.from_numpy(self.frames(start, count)).permute(0, 3, 1, 2).float()
        return frames.div_(255).sub_(0.5).div_(0.5)

    def audio_features(self, start: int, count: int) -> torch.Tensor:
        """Rows ``start .. start+count-1`` of the per-frame wav2vec2 features ``[count, L, C]``."""
        self._check_range(start, count)
        with self._open(self.record.features_file) as handle:
            return torch.from_numpy(np.ascontiguousarray(handle.get_slice("audio_features")[start : start + count]))

    def audio_windows(self, start: int, count: int, radius: int = AUDIO_WINDOW_RADIUS) -> torch.Tensor:
        """Official 5-frame windows ``[count, 2*radius+1, L, C]``: frame i gets rows i-radius .. i+radius,
        indices clamped to the video (identical to the official dataset whenever they are inside it)."""
        self._check_range(start, count)
        lo, hi = max(0, start - radius), min(self.record.frames, start + count + radius)
        rows = self.audio_features(lo, hi - lo)
        centres = torch.arange(start, start + count)[:, None] + torch.arange(-radius, radius + 1)[None, :]
        return rows[centres.clamp(0, self.record.frames - 1) - lo]

    def _static_tensors(self) -> dict[str, torch.Tensor]:
        if self._static is None:
            with self._open(self.record.features_file) as handle:
                names = [k for k in handle.keys() if k not in ("audio_features", "waveform")]
                self._static = {k: torch.from_numpy(handle.get_tensor(k)) for k in names}
        return self._static

    @property
    def face_embedding(self) -> torch.Tensor:
        """Raw ArcFace embedding ``[512]`` (not normalised, as the official pipeline)."""
        return self._static_tensors()["face_embedding"]

    @property
    def face_region(self) -> torch.Tensor:
        """Face-locator input ``[3, S, S]`` float32 in [0, 1] (the same for every frame)."""
        region = self._static_tensors()["face_region"].float() / 255.0
        return region.unsqueeze(0).repeat(3, 1, 1)

    @property
    def masks(self) -> MaskLevels:
        static = self._static_tensors()
        levels = {kind: tuple(static[mask_key(kind, k)] for k in range(MASK_LEVELS)) for kind in MASK_KINDS}
        return MaskLevels(**levels)

    @property
    def waveform(self) -> torch.Tensor:
        """16 kHz mono waveform ``[samples]`` the audio features were computed from."""
        with self._open(self.record.features_file) as handle:
            return torch.from_numpy(handle.get_tensor("waveform"))

    def clip(self, start: int, count: int, radius: int = AUDIO_WINDOW_RADIUS) -> ClipSample:
        """Frames, audio windows and the per-video conditions of one clip."""
        return ClipSample(
            start=start,
            pixels=self.pixel_values(start, count),
            audio_windows=self.audio_windows(start, count, radius),
            face_embedding=self.face_embedding,
            face_region=self.face_region,
            masks=self.masks,
        )


class SingerDataset:
    """A prepared dataset folder: its index and random access to every accepted video."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index_path = self.root / INDEX_FILE
        if not index_path.is_file():
            raise DatasetFormatError(f"No {INDEX_FILE} in {self.root}: not a prepared dataset. Create it with "
                                     "`python -m singer_core.data prepare VIDEOS... --out DATASET --models MODELS`.")
        self.index = DatasetIndex.from_dict(read_json(index_path), str(index_path))
        self._videos = [VideoData(self.root / VIDEOS_DIR / r.id, r) for r in self.index.videos]

    def __len__(self) -> int:
        return len(self._videos)

    def __getitem__(self, i: int) -> VideoData:
        return self._videos[i]

    def __iter__(self):
        return iter(self._videos)

    @property
    def size(self) -> int:
        return self.index.size

    @property
    def rejected(self) -> list[Rejection]:
        return self.index.rejected
