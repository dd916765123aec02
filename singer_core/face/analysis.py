"""Detect the face, then take its 106 landmarks and its identity embedding.

Official behaviour (``FaceAnalysis.prepare(det_size=(640, 640))``, threshold 0.5): detect on the full
image, keep the largest face, embed the ArcFace-aligned crop (5 SCRFD keypoints). The embedding is the
raw recognition output ``face["embedding"]`` (not L2-normalised) - that is what the official inference and
Hallo's training data used.

Additions: when nothing is found at 640 the detector is retried at 320 and 1024 and on a padded copy
(drawings, paintings and faces filling the frame are often found at another scale), a ``face_index``
picks another face, and a manual face box skips the detector (landmarks then come from the box, and the
5 alignment keypoints for the embedding from the landmarks).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, NoFaceError
from .landmarks import keypoints_from_landmarks
from .models import FaceModels

DETECTION_THRESHOLD = 0.5
DETECTION_SIZES = (640, 320, 1024)
PADDED_DETECTION_SIZE = 640
PAD_RATIO = 0.25


@dataclass(frozen=True)
class DetectedFace:
    """One detector hit in image pixels: box (x1, y1, x2, y2), score, 5 keypoints [5, 2] (None when the
    detector has no keypoint head; the landmarks then provide them)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray | None

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


@dataclass(frozen=True)
class AnalyzedFace:
    """The chosen face: box, landmarks [106, 2] (image pixels), raw embedding [512].

    ``score`` is None and ``manual`` True when the box was given by the user; ``num_faces`` counts the
    detector hits (0 for a manual box).
    """

    box: np.ndarray
    landmarks: np.ndarray
    embedding: np.ndarray
    keypoints: np.ndarray
    score: float | None
    num_faces: int
    manual: bool


@contextmanager
def quiet_insightface():
    """insightface's alignment calls a scikit-image API that warns on every face; not ours to fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def face_object(box: np.ndarray, keypoints: np.ndarray | None = None, score: float = 1.0):
    from insightface.app.common import Face

    return Face(bbox=np.asarray(box, dtype=np.float32), kps=keypoints, det_score=score)


def run_detector(models: FaceModels, bgr: np.ndarray, size: int) -> list[DetectedFace]:
    models.detector.det_thresh = DETECTION_THRESHOLD
    boxes, keypoints = models.detector.detect(bgr, input_size=(size, size))
    if keypoints is None:
        return [DetectedFace(box[:4].astype(np.float32), float(box[4]), None) for box in boxes]
    return [
        DetectedFace(box[:4].astype(np.float32), float(box[4]), kps.astype(np.float32))
        for box, kps in zip(boxes, keypoints, strict=True)
    ]


def _detect_padded(models: FaceModels, bgr: np.ndarray) -> list[DetectedFace]:
    pad = int(round(max(bgr.shape[:2]) * PAD_RATIO))
    padded = np.pad(bgr, ((pad, pad), (pad, pad), (0, 0)))
    return [_unpad(face, pad) for face in run_detector(models, padded, PADDED_DETECTION_SIZE)]


def _unpad(face: DetectedFace, pad: int) -> DetectedFace:
    keypoints = None if face.keypoints is None else face.keypoints - pad
    return DetectedFace(face.box - pad, face.score, keypoints)


def detect_faces(models: FaceModels, rgb: np.ndarray) -> list[DetectedFace]:
    """All faces of an HxWx3 uint8 RGB image, largest first (see ``_detect_bgr``)."""
    return _detect_bgr(models, np.ascontiguousarray(rgb[:, :, ::-1]))


def _detect_bgr(models: FaceModels, bgr: np.ndarray) -> list[DetectedFace]:
    """Tries 640, 320, 1024 and a padded image until something is found; largest face first."""
    for size in DETECTION_SIZES:
        faces = run_detector(models, bgr, size)
        if faces:
            break
    else:
        faces = _detect_padded(models, bgr)
    return sorted(faces, key=lambda face: face.area, reverse=True)


def select_face(faces: list[DetectedFace], face_index: int) -> DetectedFace:
    if not faces:
        raise NoFaceError(
            "No face was found in the reference image. Use a larger, sharper, more frontal photo, crop it "
            "closer to the face, or give the face position yourself (a manual face box or face mask)."
        )
    if not 0 <= face_index < len(faces):
        raise InputError(
            f"face_index {face_index} is out of range: {len(faces)} face(s) were found in the reference image "
            f"(valid values 0 to {len(faces) - 1}, 0 = largest face)."
        )
    return faces[face_index]


def check_face_box(face_box, image_w: int, image_h: int) -> np.ndarray:
    box = np.asarray(face_box, dtype=np.float32).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise InputError(f"face box must be four numbers (x1, y1, x2, y2) in image pixels, got {face_box!r}.")
    box = np.clip(box, 0, [image_w, image_h, image_w, image_h]).astype(np.float32)
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        raise InputError(
            f"face box {tuple(float(v) for v in face_box)} is empty or smaller than 8 pixels inside the "
            f"{image_w}x{image_h} reference image; give (x1, y1, x2, y2) around the face."
        )
    return box


def analyze_face(
    models: FaceModels, rgb: np.ndarray, face_index: int = 0, face_box=None
) -> AnalyzedFace:
    """Detect (or take the manual box), then landmarks and the raw ArcFace embedding of one face.

    ``rgb`` is an HxWx3 uint8 RGB image; insightface works on BGR, converted here.
    """
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    with quiet_insightface():
        return _analyze(models, bgr, face_index, face_box)


def _analyze(models: FaceModels, bgr: np.ndarray, face_index: int, face_box) -> AnalyzedFace:
    if face_box is not None:
        box = check_face_box(face_box, bgr.shape[1], bgr.shape[0])
        face = face_object(box)
        landmarks = np.asarray(models.landmarker.get(bgr, face), dtype=np.float32)
        face.kps = keypoints_from_landmarks(landmarks)
        score, num_faces, manual = None, 0, True
    else:
        faces = _detect_bgr(models, bgr)
        chosen = select_face(faces, face_index)
        face = face_object(chosen.box, chosen.keypoints, chosen.score)
        landmarks = np.asarray(models.landmarker.get(bgr, face), dtype=np.float32)
        if face.kps is None:
            face.kps = keypoints_from_landmarks(landmarks)
        score, num_faces, manual = chosen.score, len(faces), False
    embedding = np.asarray(models.recognizer.get(bgr, face), dtype=np.float32).reshape(-1)
    return AnalyzedFace(
        box=np.asarray(face.bbox, dtype=np.float32),
        landmarks=landmarks,
        embedding=embedding,
        keypoints=np.asarray(face.kps, dtype=np.float32),
        score=score,
        num_faces=num_faces,
        manual=manual,
    )
