"""Loader nodes: pick a model file from ComfyUI's models folders and load it."""

from __future__ import annotations

from pathlib import Path

import folder_paths
import torch
from comfy_api.latest import io

from singer_core.checkpoint import load_net
from singer_core.errors import InputError, ModelFileMissingError

from .devices import compute_device, offload_device
from .model_paths import AUDIO_SEPARATOR, FACE_MODELS_SUBDIR, INSIGHTFACE, SINGER, WAV2VEC2
from .payloads import AudioEncoder, FaceAnalyzer, SingerModel, VocalSeparator
from .sockets import AudioEncoderSocket, FaceAnalyzerSocket, SingerModelSocket, VocalSeparatorSocket

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
        net = load_net(path, dtype=dtype, device=offload_device())
        return io.NodeOutput(SingerModel(net=net, source_path=path))


def _onnx_providers() -> list[str]:
    """onnxruntime providers for ComfyUI's compute device: CUDA (with CPU fallback) only when ComfyUI runs on CUDA."""
    if compute_device().type == "cuda":
        from singer_core.face import models as face_models

        return face_models.default_providers()
    return ["CPUExecutionProvider"]


def wav2vec_source(path: str) -> Path:
    """A weights file inside a Hugging Face folder (``config.json`` beside it) stands for the folder."""
    file = Path(path)
    return file.parent if (file.parent / "config.json").is_file() else file


class SingerAudioEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerAudioEncoderLoader",
            display_name="Load SINGER Audio Encoder (wav2vec2)",
            category="SINGER/loaders",
            description="Loads wav2vec2-base-960h, which turns the song into the per-frame audio tokens SINGER "
            "was trained with.",
            inputs=[
                io.Combo.Input(
                    "wav2vec_name",
                    options=folder_paths.get_filename_list(WAV2VEC2.name),
                    tooltip="wav2vec2 in models/wav2vec2/: the Hugging Face folder wav2vec2-base-960h/ (pick its "
                    "model.safetensors; config.json must be beside it) or a single .safetensors file.",
                ),
            ],
            outputs=[AudioEncoderSocket.Output(display_name="audio_encoder")],
        )

    @classmethod
    def execute(cls, wav2vec_name: str) -> io.NodeOutput:
        from singer_core.audio import load_wav2vec

        path = _resolve(WAV2VEC2.name, wav2vec_name)
        model = load_wav2vec(wav2vec_source(path), device=offload_device())
        return io.NodeOutput(AudioEncoder(model=model, source_path=path))


def face_model_packs() -> list[str]:
    """Names of the folders under ``insightface/models/`` that hold .onnx files (e.g. ``antelopev2``)."""
    packs = set()
    for name in folder_paths.get_filename_list(INSIGHTFACE.name):
        parts = Path(name).parts
        if len(parts) == 3 and parts[0] == "models":
            packs.add(parts[1])
    return sorted(packs)


def _face_pack_dir(pack: str) -> Path:
    for root in folder_paths.get_folder_paths(INSIGHTFACE.name):
        candidate = Path(root) / "models" / pack
        if candidate.is_dir():
            return candidate
    searched = ", ".join(str(Path(root) / "models") for root in folder_paths.get_folder_paths(INSIGHTFACE.name))
    raise ModelFileMissingError(
        f"Face model folder '{pack}' is not in {searched}. Put the antelopev2 files (scrfd_10g_bnkps.onnx, "
        f"glintr100.onnx, 2d106det.onnx) in models/insightface/{FACE_MODELS_SUBDIR}/ and refresh."
    )


class SingerFaceAnalyzerLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerFaceAnalyzerLoader",
            display_name="Load SINGER Face Analysis (insightface)",
            category="SINGER/loaders",
            description="Loads insightface's antelopev2 face detector, face recognition and 106-point landmark "
            "models, which find the face in the reference photo and describe its identity.",
            inputs=[
                io.Combo.Input(
                    "model_pack",
                    options=face_model_packs(),
                    default="antelopev2",
                    tooltip="Folder under models/insightface/models/ holding scrfd_10g_bnkps.onnx, glintr100.onnx "
                    "and 2d106det.onnx (the antelopev2 pack SINGER was trained with).",
                ),
            ],
            outputs=[FaceAnalyzerSocket.Output(display_name="face_analyzer")],
        )

    @classmethod
    def execute(cls, model_pack: str) -> io.NodeOutput:
        from singer_core.face import FaceModels

        models = FaceModels.load(_face_pack_dir(model_pack), providers=_onnx_providers())
        return io.NodeOutput(FaceAnalyzer(models=models))


class SingerVocalSeparatorLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerVocalSeparatorLoader",
            display_name="Load SINGER Vocal Separator (optional)",
            category="SINGER/loaders",
            description="Loads an MDX-Net vocal separator (Kim_Vocal_2.onnx). The official inference encodes the "
            "separated voice, not the mix; connect it to 'SINGER Audio Encode' to do the same.",
            inputs=[
                io.Combo.Input(
                    "model_name",
                    options=folder_paths.get_filename_list(AUDIO_SEPARATOR.name),
                    tooltip="MDX-Net ONNX model in models/audio_separator/ (Kim_Vocal_2.onnx).",
                ),
            ],
            outputs=[VocalSeparatorSocket.Output(display_name="separator")],
        )

    @classmethod
    def execute(cls, model_name: str) -> io.NodeOutput:
        from singer_core.audio import MdxSeparator

        path = _resolve(AUDIO_SEPARATOR.name, model_name)
        return io.NodeOutput(VocalSeparator(MdxSeparator(path, providers=_onnx_providers()), source_path=path))
