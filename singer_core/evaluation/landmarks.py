"""Per-frame 106-point face landmarks of a video, with the pack's face stack (insightface SCRFD +
``2d106det`` over onnxruntime; no MediaPipe).

Only the detector and the landmark model are needed (not the 250 MB recognition model), so they are
loaded on their own; any object with ``.detector`` and ``.landmarker`` works, e.g. the
:class:`~singer_core.face.FaceModels` of the SINGER Face Analyzer node. Each frame is detected on its own
(largest face, the pack's detection retries); a frame where no face is found takes the previous frame's
box, so a brief detector miss does not break the landmark track.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from singer_core.errors import InputError, ModelFileMissingError
from singer_core.face.analysis import detect_faces, face_object, quiet_insightface
from singer_core.face.landmarks import MOUTH, NUM_LANDMARKS
from singer_core.face.models import (
    DEFAULT_SUBDIR,
    DETECTOR_FILE,
    LANDMARK_FILE,
    _expect,
    _import_model_zoo,
    default_providers,
)

# Point groups the metrics use, from the pack's 2d106det index layout (singer_core.face.landmarks).
# Inner lip: the last 8 of the 20 mouth points (the first 12 are the outer contour, corners 52 and 61).
INNER_LIP = MOUTH[12:]
# "Head" points: every landmark outside the mouth, so that talking alone is not head motion.
HEAD_POINTS = np.setdiff1d(np.arange(NUM_LANDMARKS), MOUTH)

# Relative to the models folder: where the metrics look for the two face models.
FACE_WEIGHTS = (f"{DEFAULT_SUBDIR.as_posix()}/{DETECTOR_FILE}", f"{DEFAULT_SUBDIR.as_posix()}/{LANDMARK_FILE}")


@dataclass(frozen=True)
class LandmarkModels:
    """SCRFD detector + 106-point landmark model (insightface model_zoo objects)."""

    detector: Any
    landmarker: Any

    @classmethod
    def load(cls, directory: str | Path, providers: list[str] | None = None) -> LandmarkModels:
        directory = Path(directory)
        for name in (DETECTOR_FILE, LANDMARK_FILE):
            if not (directory / name).is_file():
                raise ModelFileMissingError(f"Face model '{name}' is missing: put it at '{directory / name}' "
                                            "(insightface's antelopev2 pack).")
        model_zoo = _import_model_zoo()
        providers = providers or default_providers()
        detector = model_zoo.get_model(str(directory / DETECTOR_FILE), providers=providers)
        landmarker = model_zoo.get_model(str(directory / LANDMARK_FILE), providers=providers)
        _expect(detector, "detection", DETECTOR_FILE, directory)
        _expect(landmarker, "landmark_2d_106", LANDMARK_FILE, directory)
        ctx_id = 0 if "CUDAExecutionProvider" in providers else -1
        detector.prepare(ctx_id)
        landmarker.prepare(ctx_id)
        return cls(detector, landmarker)


def track_landmarks(models: Any, frames: Iterable[np.ndarray]) -> np.ndarray:
    """[T, 106, 2] landmarks (frame pixels, float64) of the largest face of each RGB uint8 frame."""
    track: list[np.ndarray | None] = []
    boxes: list[np.ndarray | None] = []
    previous_box = None
    for rgb in frames:
        faces = detect_faces(models, rgb)
        box = faces[0].box if faces else previous_box
        boxes.append(box)
        if box is None:
            track.append(None)
            continue
        previous_box = box
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with quiet_insightface():
            track.append(np.asarray(models.landmarker.get(bgr, face_object(box)), dtype=np.float64))
    found = [i for i, points in enumerate(track) if points is not None]
    if not found:
        raise InputError("no face was found in any frame of the video; the landmark metrics need a visible face.")
    # Frames before the first detection take the first landmarks found.
    for i in range(found[0]):
        track[i] = track[found[0]]
    return np.stack(track)
