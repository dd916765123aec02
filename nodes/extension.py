"""The ComfyExtension that lists the pack's nodes."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .conditioning import SingerAudioEncode, SingerReferenceEncode
from .download import SingerDownloadModels
from .evaluate import SingerEvaluate
from .loaders import (
    SingerAudioEncoderLoader,
    SingerCheckpointLoader,
    SingerFaceAnalyzerLoader,
    SingerVocalSeparatorLoader,
)
from .model_paths import register_model_folders
from .paste import SingerPasteBack
from .resume import SingerClearResumeState
from .sampling import SingerSampler
from .video import SingerDecodeVideo, SingerVideoDecode


class SingerExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # Folders must exist in folder_paths before ComfyUI reads the schemas.
        register_model_folders()
        return [
            SingerCheckpointLoader,
            SingerAudioEncoderLoader,
            SingerFaceAnalyzerLoader,
            SingerVocalSeparatorLoader,
            SingerAudioEncode,
            SingerReferenceEncode,
            SingerSampler,
            SingerClearResumeState,
            SingerVideoDecode,
            SingerDecodeVideo,
            SingerPasteBack,
            SingerEvaluate,
            SingerDownloadModels,
        ]
