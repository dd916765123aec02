"""Number formats: the one table of dtype names, and the rule that a run computes in the loaded format.

The weight format is chosen once, when a net is loaded (the CLI's ``--dtype``, the ComfyUI loader's
``precision``), and every run computes in it. A run never casts the net: in ComfyUI the loader's output
is cached between runs, and an in-place cast would make a later fp32 run silently compute with weights
already rounded to fp16.

Asking a run for another format than the weights' is refused with a clear message rather than served by
per-operation casting. Why: wider than stored gains no precision (the weights were rounded at load) and
costs a cast of every weight at every step; narrower than stored was tried with ``torch.autocast`` and
is not reliable for this net (its fused attention projections and reference bank mix formats that
autocast refuses, e.g. ``torch.stack`` of bf16 and fp32 rows, and on the CPU fp16 autocast ran 3x slower
than fp32). Loading the checkpoint in the wanted format gives that format exactly, at its memory cost.
"""

from __future__ import annotations

import torch

from singer_core.errors import InputError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPE_NAMES: dict[torch.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float16`` -> ``'fp16'`` (the names every option and message uses)."""
    return DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def weight_dtype(module: torch.nn.Module) -> torch.dtype:
    """The format most floating-point weights of ``module`` are stored in (float32 when it has none)."""
    counts: dict[torch.dtype, int] = {}
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.numel()
    return max(counts, key=counts.get) if counts else torch.float32


def check_compute_dtype(module: torch.nn.Module, compute: torch.dtype) -> None:
    """Raise :class:`InputError` unless ``module``'s weights are stored in ``compute`` (see the module doc)."""
    stored = weight_dtype(module)
    if compute != stored:
        raise InputError(
            f"The SINGER net was loaded in {dtype_name(stored)} but this run asks to compute in "
            f"{dtype_name(compute)}. A run computes in the format the net was loaded in and never converts the "
            f"loaded net; load the checkpoint in {dtype_name(compute)} (ComfyUI: the loader's precision; CLI: "
            f"--dtype), or run in {dtype_name(stored)}."
        )
