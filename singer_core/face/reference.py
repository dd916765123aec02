"""Reference image -> everything the model needs from it (pixels, face region, embedding, mask pyramids).

The official inference resizes the whole photo to the output size (PIL bilinear, aspect ratio not
kept) and normalises it to [-1, 1]. ``framing="full"`` does exactly that. The default
``framing="face"`` first cuts a window of the output's aspect ratio around the face
(``crop_scale`` x the face size, shrunk to fit inside the photo), so a small face in a large photo or a
photo of another aspect ratio is not squashed; a close-up already framed like the output is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from .analysis import AnalyzedFace, analyze_face
from .landmarks import face_oval_box, lip_box
from .masks import build_face_masks, check_output_size
from .models import FaceModels

Framing = Literal["face", "full"]
DEFAULT_CROP_SCALE = 2.0


@dataclass(frozen=True)
class ReferenceFace:
    """Model inputs taken from the reference image, plus where they came from.

    pixels [3, H, W] in [-1, 1]; face_region [3, H, W] in [0, 1]; face_embedding [512] (raw
    glintr100 output, as the official code); full_mask/face_mask/lip_mask: 4 levels of [1, h*w]
    (H/8 ... H/64). face_box, crop_box: (x1, y1, x2, y2) in input-image pixels (crop_box is the part of
    the photo that became the output frame); landmarks [106, 2] in output pixels.
    """

    pixels: torch.Tensor
    face_region: torch.Tensor
    face_embedding: torch.Tensor
    full_mask: tuple[torch.Tensor, ...]
    face_mask: tuple[torch.Tensor, ...]
    lip_mask: tuple[torch.Tensor, ...]
    face_box: tuple[float, float, float, float]
    crop_box: tuple[int, int, int, int]
    landmarks: torch.Tensor
    det_score: float | None
    num_faces: int
    width: int
    height: int


def to_rgb_uint8(image) -> np.ndarray:
    """HxWx3 uint8 RGB from a uint8 array or a float [H, W, 3] / [1, H, W, 3] tensor/array in [0, 1]
    (ComfyUI IMAGE layout). An alpha channel is dropped."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 16:
        raise InputError(
            f"reference image must be one RGB image of shape [H, W, 3] (at least 16x16), got shape "
            f"{tuple(array.shape)}; pass a single image, not a batch."
        )
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"reference image must be uint8 or float in [0, 1], got dtype {array.dtype}.")
    return np.ascontiguousarray(np.clip(np.round(array.astype(np.float64) * 255.0), 0, 255).astype(np.uint8))


def box_from_mask(mask, image_w: int, image_h: int) -> np.ndarray:
    """Bounding box (x1, y1, x2 + 1, y2 + 1) of the pixels > 0.5 of a [H, W] (or [1, H, W]) face mask."""
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    array = np.squeeze(array)
    if array.shape != (image_h, image_w):
        raise InputError(
            f"face mask has shape {tuple(array.shape)} but the reference image is {image_h}x{image_w}; "
            "draw the mask on the same image."
        )
    ys, xs = np.nonzero(array > 0.5)
    if len(xs) == 0:
        raise InputError("face mask is empty (no value above 0.5); paint the face area white.")
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def crop_window(
    image_w: int, image_h: int, face_box: np.ndarray, width: int, height: int, framing: Framing, crop_scale: float
) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of the photo region that becomes the output frame."""
    if framing == "full":
        return 0, 0, image_w, image_h
    if framing != "face":
        raise InputError(f"framing must be 'face' or 'full', got {framing!r}.")
    if crop_scale <= 0:
        raise InputError(f"crop_scale must be positive (got {crop_scale}); 2.0 frames head and shoulders.")
    aspect = width / height
    face_w, face_h = face_box[2] - face_box[0], face_box[3] - face_box[1]
    win_h = crop_scale * max(face_h, face_w / aspect)
    win_w = win_h * aspect
    fit = min(1.0, image_w / win_w, image_h / win_h)
    win_w, win_h = max(1, min(image_w, round(win_w * fit))), max(1, min(image_h, round(win_h * fit)))
    center_x, center_y = (face_box[0] + face_box[2]) / 2, (face_box[1] + face_box[3]) / 2
    x1 = int(np.clip(round(center_x - win_w / 2), 0, image_w - win_w))
    y1 = int(np.clip(round(center_y - win_h / 2), 0, image_h - win_h))
    return x1, y1, x1 + win_w, y1 + win_h


def normalized_pixels(rgb: np.ndarray, width: int, height: int) -> torch.Tensor:
    """PIL bilinear resize, then ToTensor and Normalize(0.5, 0.5) as the official pixel transform."""
    resized = np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))
    pixels = torch.from_numpy(resized.copy()).permute(2, 0, 1).float().div(255)
    return pixels.sub_(0.5).div_(0.5)


def build_reference(
    rgb: np.ndarray,
    face: AnalyzedFace,
    width: int = 512,
    height: int = 512,
    face_expand_ratio: float = 1.2,
    framing: Framing = "face",
    crop_scale: float = DEFAULT_CROP_SCALE,
) -> ReferenceFace:
    """Crop/resize the photo and build the masks for an already analysed face (no model runs here).

    The face-region box is the user's box for a manual face, else the face-oval box estimated from
    the landmarks (see ``landmarks.py``).
    """
    check_output_size(width, height)
    image_h, image_w = rgb.shape[:2]
    oval = face.box.astype(np.float64) if face.manual else face_oval_box(face.landmarks)
    x1, y1, x2, y2 = crop_window(image_w, image_h, oval, width, height, framing, crop_scale)
    shift = np.array([x1, y1, x1, y1], dtype=np.float64)
    masks = build_face_masks(
        y2 - y1, x2 - x1, oval - shift, lip_box(face.landmarks) - shift, height, width, face_expand_ratio
    )
    scale = np.array([width / (x2 - x1), height / (y2 - y1)])
    landmarks = (face.landmarks.astype(np.float64) - shift[:2]) * scale
    return ReferenceFace(
        pixels=normalized_pixels(np.ascontiguousarray(rgb[y1:y2, x1:x2]), width, height),
        face_region=masks.face_region,
        face_embedding=torch.from_numpy(face.embedding.astype(np.float32)),
        full_mask=masks.full,
        face_mask=masks.face,
        lip_mask=masks.lip,
        face_box=tuple(float(v) for v in face.box),
        crop_box=(x1, y1, x2, y2),
        landmarks=torch.from_numpy(landmarks.astype(np.float32)),
        det_score=face.score,
        num_faces=face.num_faces,
        width=width,
        height=height,
    )


def prepare_reference(
    image,
    models: FaceModels,
    width: int = 512,
    height: int = 512,
    *,
    face_expand_ratio: float = 1.2,
    face_index: int = 0,
    face_box=None,
    face_mask=None,
    framing: Framing = "face",
    crop_scale: float = DEFAULT_CROP_SCALE,
) -> ReferenceFace:
    """Full reference preprocessing: detect (or use ``face_box`` / the box of ``face_mask``), embed,
    crop, build the masks.

    A manual box or mask skips the detector: the face region is that box, landmarks are predicted
    inside it and the embedding is taken from the crop aligned on those landmarks.
    """
    check_output_size(width, height)
    rgb = to_rgb_uint8(image)
    if face_mask is not None and face_box is None:
        face_box = box_from_mask(face_mask, rgb.shape[1], rgb.shape[0])
    face = analyze_face(models, rgb, face_index=face_index, face_box=face_box)
    return build_reference(rgb, face, width, height, face_expand_ratio, framing, crop_scale)
