"""Loading the three insightface ONNX models of the official setup (``antelopev2`` files).

Each file is loaded on its own with ``insightface.model_zoo.get_model`` (not ``FaceAnalysis``, which
globs a folder and silently takes whatever it finds), so exactly these models run:

* ``scrfd_10g_bnkps.onnx`` - face detector (SCRFD, boxes + 5 keypoints)
* ``glintr100.onnx`` - face recognition (ArcFace, 512-d). Hallo/SINGER's image projection was
  trained on this model's embeddings; another recognition model gives vectors in a different space and
  silently weakens identity.
* ``2d106det.onnx`` - 106-point landmarks (replacing MediaPipe for the masks)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ModelFileMissingError, SingerError

DETECTOR_FILE = "scrfd_10g_bnkps.onnx"
RECOGNITION_FILE = "glintr100.onnx"
LANDMARK_FILE = "2d106det.onnx"
MODEL_FILES = (DETECTOR_FILE, RECOGNITION_FILE, LANDMARK_FILE)
DEFAULT_SUBDIR = Path("insightface") / "models" / "antelopev2"

INSTALL_HINT = (
    "install it with `pip install --no-deps insightface` plus `pip install onnxruntime onnx scikit-image` "
    "(use onnxruntime-gpu for CUDA); --no-deps keeps insightface from pulling in opencv-python. "
    "insightface 0.7.x also imports albumentations and matplotlib when loaded: install them if named above."
)


class FaceModelsUnavailableError(SingerError, ImportError):
    """insightface (or one of the packages it needs) is not installed."""


def default_face_models_dir(models_root: str | Path) -> Path:
    """``<models_root>/insightface/models/antelopev2``, where the node pack looks by default."""
    return Path(models_root) / DEFAULT_SUBDIR


def _import_model_zoo() -> Any:
    try:
        from insightface import model_zoo
    except ImportError as error:
        raise FaceModelsUnavailableError(
            f"Face analysis needs the insightface package, which could not be imported ({error}); " + INSTALL_HINT
        ) from error
    return model_zoo


def default_providers() -> list[str]:
    """CUDA when this onnxruntime build has it, always CPU as the fallback."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


@dataclass(frozen=True)
class FaceModels:
    """The loaded detector, recognizer and landmark models (insightface model_zoo objects)."""

    detector: Any
    recognizer: Any
    landmarker: Any
    directory: Path

    @classmethod
    def load(cls, face_models_dir: str | Path, providers: list[str] | None = None) -> FaceModels:
        directory = Path(face_models_dir)
        for name in MODEL_FILES:
            if not (directory / name).is_file():
                raise ModelFileMissingError(
                    f"Face model file '{name}' is missing from '{directory}'. That folder must hold "
                    f"{', '.join(MODEL_FILES)} (insightface's antelopev2 pack, as used by Hallo/SINGER)."
                )
        model_zoo = _import_model_zoo()
        providers = providers or default_providers()
        models = {name: model_zoo.get_model(str(directory / name), providers=providers) for name in MODEL_FILES}
        _expect(models[DETECTOR_FILE], "detection", DETECTOR_FILE, directory)
        _expect(models[RECOGNITION_FILE], "recognition", RECOGNITION_FILE, directory)
        _expect(models[LANDMARK_FILE], "landmark_2d_106", LANDMARK_FILE, directory)
        ctx_id = 0 if "CUDAExecutionProvider" in providers else -1
        for model in models.values():
            model.prepare(ctx_id)
        return cls(
            detector=models[DETECTOR_FILE],
            recognizer=models[RECOGNITION_FILE],
            landmarker=models[LANDMARK_FILE],
            directory=directory,
        )


def _expect(model: Any, task: str, name: str, directory: Path) -> None:
    found = getattr(model, "taskname", None)
    if found != task:
        raise CheckpointError(
            f"'{directory / name}' is not the expected {task} model (insightface read it as {found!r}); "
            f"replace it with the original {name} of the antelopev2 pack."
        )
