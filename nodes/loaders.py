"""Loader nodes: pick a model file from ComfyUI's models folders and load it."""

from __future__ import annotations

import folder_paths
import torch
from comfy_api.latest import io

from singer_core.checkpoint import load_net
from singer_core.errors import InputError, ModelFileMissingError

from .model_paths import SINGER
from .payloads import SingerModel
from .sockets import SingerModelSocket

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def _dtype(precision: str) -> torch.dtype | None:
    """None for 'auto' (the file's own dtype)."""
    dtypes = {"auto": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision not in dtypes:
        raise InputError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}; pick one of those.")
    return dtypes[precision]


def _resolve(folder: str, name: str) -> str:
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        searched = ", ".join(folder_paths.get_folder_paths(folder))
        raise ModelFileMissingError(
            f"Model file '{name}' is not in the '{folder}' model folder ({searched}). "
            "Put it there and refresh, or pick another file."
        )
    return path


class SingerCheckpointLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerCheckpointLoader",
            display_name="Load SINGER Checkpoint",
            category="SINGER/loaders",
            description="Loads the SINGER network (reference UNet, denoising UNet with motion, audio and "
            "spectral modules, face locator, projections) from one checkpoint file.",
            inputs=[
                io.Combo.Input(
                    "ckpt_name",
                    options=folder_paths.get_filename_list(SINGER.name),
                    tooltip="SINGER checkpoint in models/singer/ (the authors' net.pth or its "
                    ".safetensors conversion).",
                ),
                io.Combo.Input(
                    "precision",
                    options=list(PRECISIONS),
                    default="auto",
                    tooltip="Number format of the weights: 'auto' keeps the file's own; fp16/bf16 halve the "
                    "memory (use them on a GPU), fp32 is the most exact.",
                ),
            ],
            outputs=[SingerModelSocket.Output(display_name="singer_model")],
        )

    @classmethod
    def execute(cls, ckpt_name: str, precision: str = "auto") -> io.NodeOutput:
        dtype = _dtype(precision)
        path = _resolve(SINGER.name, ckpt_name)
        net = load_net(path, dtype=dtype)
        return io.NodeOutput(SingerModel(net=net, source_path=path))
