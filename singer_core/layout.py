"""Where the model files live: the one table of model folders, the file types each accepts, and the fixed
file names, shared by the command line (``singer_core.pipeline.model_files``) and the ComfyUI nodes
(``nodes.model_paths``, which registers the same folders with ComfyUI's ``folder_paths``).

::

    MODELS/singer/<net>.safetensors | .pth | .pt | .ckpt | .bin     SINGER (or Hallo) checkpoint
    MODELS/vae/<name>/ (diffusers folder) or <name>.safetensors     sd-vae-ft-mse
    MODELS/wav2vec2/<name>/ (Hugging Face folder) or <name>.safetensors   wav2vec2-base-960h
    MODELS/insightface/models/antelopev2/{scrfd_10g_bnkps,glintr100,2d106det}.onnx
    MODELS/audio_separator/Kim_Vocal_2.onnx                         (optional vocal separator)
"""

from __future__ import annotations

from dataclasses import dataclass

# Everything singer_core.checkpoint reads: .safetensors directly, the rest with torch.load(weights_only=True).
CHECKPOINT_SUFFIXES = frozenset({".safetensors", ".pth", ".pt", ".ckpt", ".bin"})
ANTELOPE_FILES = ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "2d106det.onnx")
SEPARATOR_FILE = "Kim_Vocal_2.onnx"
FACE_MODELS_SUBDIR = "models/antelopev2"  # inside the insightface folder, as singer_core.face expects


@dataclass(frozen=True)
class ModelFolder:
    """A folder under the models root (a ComfyUI ``folder_paths`` key) and the file types listed in it."""

    name: str
    extensions: frozenset[str]


SINGER = ModelFolder("singer", CHECKPOINT_SUFFIXES)
WAV2VEC2 = ModelFolder("wav2vec2", frozenset({".safetensors", ".bin"}))
INSIGHTFACE = ModelFolder("insightface", frozenset({".onnx"}))
AUDIO_SEPARATOR = ModelFolder("audio_separator", frozenset({".onnx"}))
VAE = ModelFolder("vae", CHECKPOINT_SUFFIXES)  # ComfyUI's own folder
