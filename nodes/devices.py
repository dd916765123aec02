"""Where models run and in which number format, decided by ComfyUI's ``model_management``.

Loaded models live on the offload device between runs (ComfyUI keeps the loader nodes' outputs
cached); a node moves a model to the compute device only for its own work, after asking ComfyUI to
free that much memory, and puts it back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import comfy.model_management as mm
import torch

from singer_core.errors import CancelledError, InputError

DTYPE_CHOICES = ("auto", "fp32", "fp16", "bf16")
WORKING_MEMORY = 1024**3  # activations on top of the weights, a generous estimate for one clip at 512x512


def compute_device() -> torch.device:
    return mm.get_torch_device()


def offload_device() -> torch.device:
    return mm.unet_offload_device()


def resolve_dtype(choice: str, device: torch.device) -> str:
    """``auto``: fp16 where ComfyUI would run a UNet in fp16 (the official inference precision), else bf16 where
    supported, else fp32 (always on the CPU)."""
    if choice not in DTYPE_CHOICES:
        raise InputError(f"dtype '{choice}' is not one of {', '.join(DTYPE_CHOICES)}; pick one of those.")
    if choice != "auto":
        return choice
    if mm.should_use_fp16(device):
        return "fp16"
    if mm.should_use_bf16(device):
        return "bf16"
    return "fp32"


@contextmanager
def on_compute_device(module: torch.nn.Module, working_memory: int = WORKING_MEMORY) -> Iterator[torch.device]:
    """Run ``module`` on ComfyUI's compute device; it goes back to the offload device afterwards, even on errors."""
    device = compute_device()
    if device.type != "cpu":
        mm.free_memory(mm.module_size(module) + working_memory, device)
    module.to(device)
    try:
        yield device
    finally:
        module.to(offload_device())
        mm.soft_empty_cache()


def check_interrupted() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
    mm.throw_exception_if_processing_interrupted()


@contextmanager
def interrupts_as_comfy() -> Iterator[None]:
    """Turn the library's :class:`CancelledError` (raised when ``should_cancel`` said so) into ComfyUI's
    ``InterruptProcessingException``, which the executor reports as ``execution_interrupted``."""
    try:
        yield
    except CancelledError as error:
        mm.interrupt_current_processing(False)  # consume the flag, as throw_exception_if_processing_interrupted does
        raise mm.InterruptProcessingException() from error


def cancel_requested() -> bool:
    return mm.processing_interrupted()
