"""ComfyUI features newer than the oldest host the pack supports (0.3.75), used only where the host has them
(each checked in docs/comfyui_compat.md against 0.3.75, 0.28.2 and 0.38.1)."""

from __future__ import annotations

import inspect

import comfy.model_management as mm
import torch


def expert(input_class) -> dict:
    """``{"advanced": True}`` where the host's input class takes it (0.28+: the input is folded under the node's
    advanced section), else nothing (0.3.75's inputs have no such argument and would refuse it)."""
    return {"advanced": True} if "advanced" in inspect.signature(input_class.__init__).parameters else {}


def is_oom(error: BaseException) -> bool:
    """ComfyUI's own out-of-memory test where it has one (0.28+: ``torch.OutOfMemoryError`` and a
    ``torch.AcceleratorError`` that reports out of memory), else ``torch.OutOfMemoryError`` (0.3.75)."""
    if hasattr(mm, "is_oom"):
        return bool(mm.is_oom(error))
    return isinstance(error, torch.OutOfMemoryError)
