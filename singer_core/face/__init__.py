"""Reference-image preprocessing: face detection, identity embedding, face region and attention masks.

Host-independent (numpy, torch, cv2, PIL, insightface over onnxruntime); MediaPipe is not used.
"""

from .analysis import AnalyzedFace, DetectedFace, analyze_face, detect_faces
from .masks import FaceMasks, build_face_masks, mask_level_sizes
from .models import (
    DETECTOR_FILE,
    LANDMARK_FILE,
    MODEL_FILES,
    RECOGNITION_FILE,
    FaceModels,
    FaceModelsUnavailableError,
    default_face_models_dir,
)
from .reference import ReferenceFace, build_reference, prepare_reference, to_rgb_uint8

__all__ = [
    "DETECTOR_FILE",
    "LANDMARK_FILE",
    "MODEL_FILES",
    "RECOGNITION_FILE",
    "AnalyzedFace",
    "DetectedFace",
    "FaceMasks",
    "FaceModels",
    "FaceModelsUnavailableError",
    "ReferenceFace",
    "analyze_face",
    "build_face_masks",
    "build_reference",
    "default_face_models_dir",
    "detect_faces",
    "mask_level_sizes",
    "prepare_reference",
    "to_rgb_uint8",
]
