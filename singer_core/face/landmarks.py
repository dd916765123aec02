"""Face geometry from insightface's 106-point landmarks (``2d106det``).

The official SINGER/Hallo preprocessing takes two boxes from MediaPipe's 478-point face mesh:
the face-oval ("silhouette") box and the outer-lip box. MediaPipe is not available to us, so both
boxes are estimated from the 106 points:

* lips: points 52-71 are the outer and inner lip contours, so their bounding box is the outer-lip
  box, like MediaPipe's 20 outer-lip points.
* face oval: the 106-point contour (0-32) runs ear to ear under the eyes and gives the left, right
  and bottom (chin) edges. It has no forehead, whereas MediaPipe's oval reaches up to the upper
  forehead. The forehead is added by moving the eyebrow points upwards by ``FOREHEAD_RATIO`` times the
  chin-to-brow distance; 0.225 is that ratio in MediaPipe's canonical face model (oval top 8.26,
  brow top 5.11, mean of the 10 brow points 4.56, chin -9.40: (8.26 - 5.11) / (4.56 + 9.40) = 0.226).

Index groups follow the ``2d106det`` markup: contour 0-32 (0 = chin), image-left eye 33-42,
image-left brow 43-51, mouth 52-71 (corners 52 and 61), nose 72-86 (tip 86), image-right eye 87-96,
image-right brow 97-105.
"""

from __future__ import annotations

import numpy as np

from ..errors import CheckpointError

CONTOUR = np.arange(0, 33)
LEFT_EYE = np.arange(33, 43)
LEFT_BROW = np.arange(43, 52)
MOUTH = np.arange(52, 72)
NOSE = np.arange(72, 87)
RIGHT_EYE = np.arange(87, 97)
RIGHT_BROW = np.arange(97, 106)
CHIN = 0
NOSE_TIP = 86
MOUTH_LEFT_CORNER = 52
MOUTH_RIGHT_CORNER = 61
NUM_LANDMARKS = 106

FOREHEAD_RATIO = 0.225


def _check(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (NUM_LANDMARKS, 2):
        raise CheckpointError(
            f"The landmark model gave points of shape {points.shape}, not the {NUM_LANDMARKS} (x, y) points of "
            "2d106det.onnx; put the antelopev2 pack's own 2d106det.onnx in the face model folder."
        )
    return points


def bounding_box(points: np.ndarray) -> np.ndarray:
    """(x1, y1, x2, y2) of a point set."""
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def face_oval_box(landmarks: np.ndarray) -> np.ndarray:
    """Estimate of MediaPipe's face-oval bounding box (contour + brows + a synthetic forehead)."""
    points = _check(landmarks)
    brows = points[np.concatenate([LEFT_BROW, RIGHT_BROW])]
    up = brows.mean(axis=0) - points[CHIN]
    forehead = brows + FOREHEAD_RATIO * up
    return bounding_box(np.concatenate([points[CONTOUR], brows, forehead]))


def lip_box(landmarks: np.ndarray) -> np.ndarray:
    """Bounding box of the lip contours (MediaPipe's outer-lip box)."""
    return bounding_box(_check(landmarks)[MOUTH])


def keypoints_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """The 5 SCRFD keypoints (eyes, nose tip, mouth corners; image-left first) for ArcFace alignment."""
    points = _check(landmarks)
    return np.stack(
        [
            points[LEFT_EYE].mean(axis=0),
            points[RIGHT_EYE].mean(axis=0),
            points[NOSE_TIP],
            points[MOUTH_LEFT_CORNER],
            points[MOUTH_RIGHT_CORNER],
        ]
    ).astype(np.float32)
