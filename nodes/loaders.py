"""Loader nodes: pick a model file from ComfyUI's models folders and load it."""

from __future__ import annotations

from pathlib import Path

import folder_paths
from comfy_api.latest import io

from singer_core.checkpoint import load_net
from singer_core.errors import ModelFileMissingError

from .devices import DTYPE_CHOICES, compute_device, managed, offload_device, onnx_providers, resolve_dtype
from .model_paths import AUDIO_SEPARATOR, FACE_MODELS_SUBDIR, INSIGHTFACE, SINGER, WAV2VEC2
from .payloads import AudioEncoder, FaceAnalyzer, SingerModel, VocalSeparator
from .sockets import AudioEncoderSocket, FaceAnalyzerSocket, SingerModelSocket, VocalSeparatorSocket


def _resolve(folder: str, name: str) -> str:
    """The full path of ``name``, which must be one of the files ComfyUI lists in ``folder``.

    ComfyUI 0.3.75 does not check V3 combo values against their options, so an API client can send any
    string: only a listed name is accepted (no absolute paths, no ``..``, nothing outside the folder).
    """
    path = folder_paths.get_full_path(folder, name) if name in folder_paths.get_filename_list(folder) else None
    if path is None:
        searched = ", ".join(folder_paths.get_folder_paths(folder))
        raise ModelFileMissingError(
            f"Model file '{name}' is not in the '{folder}' model folder ({searched}). "
            "Put it there and refresh, or pick another file from the list."
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
                    options=list(DTYPE_CHOICES),
                    default="auto",
                    tooltip="Number format of the weights, and of the sampling (decided once, here): 'auto' = "
                    "ComfyUI's choice for its device (fp16 on GPUs that do it well, the official setting; else "
                    "bf16; fp32 on the CPU; --fp16-unet/--bf16-unet/--fp32-unet are honoured). fp16/bf16 halve "
                    "the memory, fp32 is the most exact.",
                ),
            ],
            outputs=[SingerModelSocket.Output(display_name="singer_model")],
        )

    @classmethod
    def execute(cls, ckpt_name: str, precision: str = "auto") -> io.NodeOutput:
        dtype = resolve_dtype(precision, compute_device())
        path = _resolve(SINGER.name, ckpt_name)
        net = load_net(path, dtype=dtype, device=offload_device())
        return io.NodeOutput(SingerModel(patcher=managed(net, "SINGER net"), source_path=path))


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
        return io.NodeOutput(AudioEncoder(patcher=managed(model, "wav2vec2 encoder"), source_path=path))


def face_model_packs() -> list[str]:
    """Names of the folders under ``insightface/models/`` that hold .onnx files (e.g. ``antelopev2``)."""
    packs = set()
    for name in folder_paths.get_filename_list(INSIGHTFACE.name):
        parts = Path(name).parts
        if len(parts) == 3 and parts[0] == "models":
            packs.add(parts[1])
    return sorted(packs)


def _face_pack_dir(pack: str) -> Path:
    """The folder of a listed face model pack; any other value (a path, ``..``) is refused."""
    if pack in face_model_packs():
        for root in folder_paths.get_folder_paths(INSIGHTFACE.name):
            candidate = Path(root) / "models" / pack
            if candidate.is_dir():
                return candidate
    searched = ", ".join(str(Path(root) / "models") for root in folder_paths.get_folder_paths(INSIGHTFACE.name))
    raise ModelFileMissingError(
        f"Face model folder '{pack}' is not one of the face model packs in {searched} "
        f"(listed: {', '.join(face_model_packs()) or 'none'}). Put the antelopev2 files (scrfd_10g_bnkps.onnx, "
        f"glintr100.onnx, 2d106det.onnx) in models/insightface/{FACE_MODELS_SUBDIR}/, refresh, and pick it."
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
        analyzer = FaceAnalyzer(directory=_face_pack_dir(model_pack), providers=onnx_providers())
        with analyzer.session():
            pass  # loads the three models now, so a wrong file is reported by this node
        return io.NodeOutput(analyzer)


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
        separator = VocalSeparator(source_path=_resolve(AUDIO_SEPARATOR.name, model_name), providers=onnx_providers())
        with separator.session():
            pass  # opens the model now, so a wrong file is reported by this node
        return io.NodeOutput(separator)
