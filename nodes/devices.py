"""Where models run and in which number format, decided by ComfyUI's ``model_management``.

The SINGER net and the wav2vec2 encoder live under ComfyUI's memory manager: each is wrapped in a
``comfy.model_patcher.ModelPatcher`` (load device = ComfyUI's torch device, offload device = its UNet
offload device) and loaded with ``model_management.load_models_gpu(..., memory_required=...)`` for a
node's work. ComfyUI then sees them: it evicts other models to make room, keeps them loaded between
runs while memory allows, and unloads them on "Unload models" / ``POST /free``.

They are always loaded whole (``force_full_load``): the net and wav2vec2 are built from plain torch
layers, which cannot run with part of their weights on another device (ComfyUI's partial loading
streams weights only through its own ``comfy.ops`` layers). With ``--lowvram``/``--normalvram`` that
means SINGER takes its full size on the GPU while it runs (others are evicted first); ``--novram``
(weights never on the GPU) is refused with a message, never half-loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import comfy.model_management as mm
import comfy.model_patcher
import torch

from singer_core.errors import CancelledError, InputError
from singer_core.precision import DTYPE_NAMES, DTYPES, dtype_name

from .compat import is_oom

DTYPE_CHOICES = ("auto", *DTYPES)


def compute_device() -> torch.device:
    return mm.get_torch_device()


def offload_device() -> torch.device:
    return mm.unet_offload_device()


def auto_weight_dtype(device: torch.device) -> torch.dtype:
    """ComfyUI's choice of UNet weight format for ``device`` (``--fp16-unet``/``--bf16-unet``/... honoured):
    fp16 where ComfyUI runs UNets in fp16 (the official inference precision), else bf16, else fp32
    (always on the CPU). A format SINGER cannot compute in (fp8) falls back to fp16/fp32."""
    chosen = mm.unet_dtype(device=device, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32])
    if chosen in DTYPE_NAMES:
        return chosen
    return torch.float16 if mm.should_use_fp16(device) else torch.float32


def resolve_dtype(choice: str, device: torch.device, what: str = "precision") -> torch.dtype:
    """A ``DTYPE_CHOICES`` name -> torch dtype; ``auto`` = :func:`auto_weight_dtype`."""
    if choice not in DTYPE_CHOICES:
        raise InputError(f"{what} '{choice}' is not one of {', '.join(DTYPE_CHOICES)}; pick one of those.")
    return auto_weight_dtype(device) if choice == "auto" else DTYPES[choice]


class ManagedModule(torch.nn.Module):
    """What a ``ModelPatcher`` manages: holds the model as its child, so the patcher's bookkeeping
    attributes (``device``, ``model_loaded_weight_memory``, ...) land here and not on the SINGER net or
    the transformers model (whose read-only ``device`` property a patcher could not set)."""

    def __init__(self, inner: torch.nn.Module, kind: str) -> None:
        super().__init__()
        self.inner = inner
        self.kind = kind  # shown in ComfyUI's log: "Requested to load ..." names the class

    def extra_repr(self) -> str:
        return f"kind={self.kind}"


class WholeModelPatcher(comfy.model_patcher.ModelPatcher):
    """A ``ModelPatcher`` for plain torch models: never partially unloaded (that would leave layers on two
    devices), and an unload ComfyUI asks for while a node is computing with the model (e.g. to make room
    for the VAE between two clips) is carried out when that node's work ends."""

    in_use = False
    pending_detach = False

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
        return 0  # ComfyUI then unloads the whole model instead

    def detach(self, unpatch_all=True):
        if self.in_use and unpatch_all:
            self.pending_detach = True
            return self.model
        return super().detach(unpatch_all)


def managed(model: torch.nn.Module, kind: str) -> WholeModelPatcher:
    """Wrap a loaded model (on the offload device) for ComfyUI's memory manager."""
    return WholeModelPatcher(ManagedModule(model, kind), load_device=compute_device(), offload_device=offload_device())


def model_of(patcher: comfy.model_patcher.ModelPatcher) -> torch.nn.Module:
    return patcher.model.inner


def _check_whole_loading_possible(patcher: comfy.model_patcher.ModelPatcher) -> None:
    if mm.vram_state == mm.VRAMState.NO_VRAM and not mm.is_device_cpu(patcher.load_device):
        raise InputError(
            "ComfyUI runs with --novram, which keeps model weights off the GPU and streams them layer by layer. "
            f"The {patcher.model.kind} is built from plain torch layers that cannot be streamed, and loading it "
            "half on the GPU would break it. Restart ComfyUI with --lowvram (SINGER is then loaded whole while "
            "it runs, other models are evicted first) or with --cpu."
        )


def load_for_work(patchers: Sequence[WholeModelPatcher], memory_required: int) -> torch.device:
    """Load whole onto ComfyUI's torch device, after ComfyUI freed the weights' size plus
    ``memory_required`` (the work's own memory); returns the device the models now run on."""
    for patcher in patchers:
        _check_whole_loading_possible(patcher)
    try:
        mm.load_models_gpu(list(patchers), memory_required=int(memory_required), force_full_load=True)
    except Exception as error:
        if not is_oom(error):
            raise
        weights = sum(p.model_size() for p in patchers)
        for patcher in patchers:
            patcher.detach()  # never leave part of a model on the GPU
        raise InputError(
            f"Not enough GPU memory for SINGER: its weights need {weights / 2**30:.2f} GiB and this work about "
            f"{memory_required / 2**30:.2f} GiB more. Lower the resolution or clip_length, load the net in fp16, "
            "close other GPU programs, or start ComfyUI with --cpu."
        ) from error
    return patchers[0].load_device


@contextmanager
def working(patchers: Sequence[WholeModelPatcher], memory_required: int) -> Iterator[torch.device]:
    """The models loaded whole on ComfyUI's device for the block (see :func:`load_for_work`); they stay
    registered with ComfyUI afterwards (loaded while memory allows, like ComfyUI's own models)."""
    device = load_for_work(patchers, memory_required)
    for patcher in patchers:
        patcher.in_use = True
    try:
        yield device
    finally:
        for patcher in patchers:
            patcher.in_use = False
            if patcher.pending_detach:
                patcher.pending_detach = False
                patcher.detach()


def describe(patcher: comfy.model_patcher.ModelPatcher) -> str:
    model = model_of(patcher)
    first = next(model.parameters())
    return f"{patcher.model.kind}, {dtype_name(first.dtype)}, on {first.device}"


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


def onnx_providers() -> list[str]:
    """onnxruntime providers matching ComfyUI's device: CUDA (CPU as fallback) when ComfyUI computes on CUDA
    and this onnxruntime has the CUDA provider; else the CPU only."""
    if compute_device().type == "cuda":
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def onnx_on_gpu(providers: Sequence[str]) -> bool:
    return "CUDAExecutionProvider" in providers
