"""Face analysis over a whole video (first pass), the crop window, and the per-video face conditions.

Hallo's data preparation takes landmarks on every frame, builds the face and lip masks from the union of
their boxes over the video, and one face embedding per video. Here the insightface stack of the pack
(``singer_core.face``, no MediaPipe) runs on every ``detect_every``-th 25 fps frame (default 5: 5 frames a
second; a face does not leave its union box between two samples at singing-video speeds), keeping:
the largest face's detector box, its face-oval and lip boxes from the 106 landmarks, the sharpness of the
face, whether a second face is present, and the sampled frame with the most confident single face (its raw
ArcFace embedding becomes the video's face embedding, computed at source resolution like inference does
on a photo).

Crop (SINGER's "face crop, scale ratio 0.8"; the released code has no data preparation, so this is our
reading of it, documented in docs/dataset_format.md): a square window of side ``crop_ratio`` x the source's
shorter side, centred on the union face box and shifted inside the frame, enlarged (up to the shorter side)
when the union face box does not fit. It is the same window for every frame, so the face region and masks
are the same for all frames, as in the official dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from singer_core.face.analysis import DETECTION_SIZES, face_object, quiet_insightface, run_detector
from singer_core.face.landmarks import face_oval_box, lip_box
from singer_core.face.masks import build_face_masks

from .quality import sharpness


@dataclass
class FaceTrack:
    """What the first pass learnt about the faces of one video (boxes in source pixels)."""

    frames: int = 0  # 25 fps frames decoded
    sampled: int = 0
    with_face: int = 0
    several: int = 0
    boxes: list[np.ndarray] = field(default_factory=list)  # detector box of the largest face, per sample
    ovals: list[np.ndarray] = field(default_factory=list)
    lips: list[np.ndarray] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    best_score: float = -1.0
    best_frame: np.ndarray | None = None  # RGB source frame of the most confident single face
    best_face: object | None = None  # its insightface Face (box + keypoints)
    width: int = 0
    height: int = 0

    def union(self, boxes: list[np.ndarray]) -> np.ndarray:
        stacked = np.stack(boxes)
        return np.concatenate([stacked[:, :2].min(axis=0), stacked[:, 2:].max(axis=0)])

    @property
    def face_union(self) -> np.ndarray:
        return self.union(self.ovals)

    @property
    def lip_union(self) -> np.ndarray:
        return self.union(self.lips)

    def median_face_height(self) -> float:
        return float(np.median([b[3] - b[1] for b in self.boxes])) if self.boxes else 0.0

    def median_sharpness(self) -> float:
        return float(np.median(self.sharpness)) if self.sharpness else 0.0


def analyse_frame(models, rgb: np.ndarray, track: FaceTrack, second_face_area: float) -> None:
    """Detect, take the largest face's landmarks and sharpness; update ``track``.

    One detector run at the official 640 x 640 (``FaceAnalysis.prepare(det_size=(640, 640))``), without the
    retries at other scales the reference-photo path makes: a video frame whose face is not found at 640
    is better left out of training than rescued.
    """
    track.sampled += 1
    track.height, track.width = rgb.shape[:2]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    faces = sorted(run_detector(models, bgr, DETECTION_SIZES[0]), key=lambda f: f.area, reverse=True)
    if not faces:
        return
    largest = faces[0]
    others = [f for f in faces[1:] if f.area >= second_face_area * largest.area]
    track.with_face += 1
    track.several += bool(others)
    face = face_object(largest.box, largest.keypoints, largest.score)
    with quiet_insightface():
        landmarks = np.asarray(models.landmarker.get(bgr, face), dtype=np.float32)
    if face.kps is None:
        from singer_core.face.landmarks import keypoints_from_landmarks

        face.kps = keypoints_from_landmarks(landmarks)
    track.boxes.append(largest.box.astype(np.float64))
    track.ovals.append(face_oval_box(landmarks))
    track.lips.append(np.asarray(lip_box(landmarks), dtype=np.float64))
    track.sharpness.append(sharpness(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), largest.box))
    if not others and largest.score > track.best_score:
        track.best_score, track.best_frame, track.best_face = largest.score, rgb, face


def face_embedding(models, track: FaceTrack) -> np.ndarray:
    """Raw ArcFace embedding [512] of the most confident single face (``None`` frame -> zeros)."""
    if track.best_frame is None:
        return np.zeros(512, np.float32)
    bgr = np.ascontiguousarray(track.best_frame[:, :, ::-1])
    with quiet_insightface():
        return np.asarray(models.recognizer.get(bgr, track.best_face), dtype=np.float32).reshape(-1)


def crop_window(track: FaceTrack, ratio: float) -> tuple[int, int, int, int]:
    """Square (x1, y1, x2, y2) in source pixels (see the module docstring)."""
    width, height = track.width, track.height
    shorter = min(width, height)
    union = track.face_union
    side = max(ratio * shorter, union[2] - union[0], union[3] - union[1])
    side = int(round(min(side, shorter)))
    cx, cy = (union[0] + union[2]) / 2, (union[1] + union[3]) / 2
    x1 = int(np.clip(round(cx - side / 2), 0, width - side))
    y1 = int(np.clip(round(cy - side / 2), 0, height - side))
    return x1, y1, x1 + side, y1 + side


@dataclass
class FaceConditions:
    face_region: np.ndarray  # [S, S] uint8
    full: tuple
    face: tuple
    lip: tuple
    face_box: list[float]  # output pixels
    lip_box: list[float]


def face_conditions(track: FaceTrack, window: tuple[int, int, int, int], size: int,
                    face_expand_ratio: float) -> FaceConditions:
    """Face region and mask pyramids from the union boxes, exactly as the reference image path builds them
    (``build_face_masks`` on the crop window, resized to ``size``)."""
    x1, y1, x2, y2 = window
    shift = np.array([x1, y1, x1, y1], dtype=np.float64)
    face_box, lip = track.face_union - shift, track.lip_union - shift
    masks = build_face_masks(y2 - y1, x2 - x1, face_box, lip, size, size, face_expand_ratio)
    region = np.round(masks.face_region[0].numpy() * 255.0).astype(np.uint8)
    scale = size / (x2 - x1)
    return FaceConditions(
        face_region=region,
        full=tuple(m.numpy() for m in masks.full),
        face=tuple(m.numpy() for m in masks.face),
        lip=tuple(m.numpy() for m in masks.lip),
        face_box=[round(float(v) * scale, 3) for v in face_box],
        lip_box=[round(float(v) * scale, 3) for v in lip],
    )
