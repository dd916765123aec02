"""What the pipeline needs about the reference portrait, checked against the output size."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from singer_core.errors import InputError
from singer_core.face.masks import MASK_LEVEL_STRIDES


@dataclass
class ReferenceInputs:
    """The prepared reference portrait (official ``ImageProcessor.preprocess`` outputs).

    ``pixels`` [3, H, W] in [-1, 1]; ``face_embedding`` [512] (insightface); ``face_region`` [3, H, W]
    in [0, 1]; ``full_mask`` / ``face_mask`` / ``lip_mask``: four levels each, one frame per level,
    flattened ``[(H/s)·(W/s)]`` for s = 8, 16, 32, 64 (``[1, hw]`` or ``[f, hw]`` also accepted).
    """

    pixels: torch.Tensor
    face_embedding: torch.Tensor
    face_region: torch.Tensor
    full_mask: list[torch.Tensor] | tuple[torch.Tensor, ...]
    face_mask: list[torch.Tensor] | tuple[torch.Tensor, ...]
    lip_mask: list[torch.Tensor] | tuple[torch.Tensor, ...]

    @classmethod
    def of(cls, reference) -> ReferenceInputs:
        """Accept any object with these attributes (e.g. ``singer_core.face.ReferenceFace``)."""
        if isinstance(reference, cls):
            return reference
        names = ("pixels", "face_embedding", "face_region", "full_mask", "face_mask", "lip_mask")
        missing = [name for name in names if not hasattr(reference, name)]
        if missing:
            raise InputError(f"The reference is missing {', '.join(missing)}; prepare it with prepare_reference().")
        return cls(**{name: getattr(reference, name) for name in names})

    def validate(self, width: int, height: int) -> None:
        _shape("reference image", self.pixels, (3, height, width))
        _shape("face region", self.face_region, (3, height, width))
        if self.face_embedding.numel() != 512:
            raise InputError(f"The face embedding must have 512 values (got {self.face_embedding.numel()}).")
        if float(self.pixels.min()) < -1.001 or float(self.pixels.max()) > 1.001:
            raise InputError("The reference image must be scaled to [-1, 1] (official preprocessing).")
        for name in ("full_mask", "face_mask", "lip_mask"):
            levels = getattr(self, name)
            if len(levels) != len(MASK_LEVEL_STRIDES):
                raise InputError(f"{name} must have {len(MASK_LEVEL_STRIDES)} levels (got {len(levels)}).")
            for level, (mask, stride) in enumerate(zip(levels, MASK_LEVEL_STRIDES, strict=True)):
                cells = (height // stride) * (width // stride)
                if mask.shape[-1] != cells:
                    raise InputError(
                        f"{name} level {level} has {mask.shape[-1]} cells; a {width}x{height} output needs {cells}. "
                        "Prepare the reference at the output size."
                    )


def _shape(what: str, tensor: torch.Tensor, expected: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != expected:
        raise InputError(
            f"The {what} is {list(tensor.shape)}, expected {list(expected)} (channels, height, width) for this "
            "output size. Prepare the reference at the output size."
        )
