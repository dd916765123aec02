"""Song-length generation: options, codec protocol, clip chaining and the ``generate`` entry point."""

from singer_core.pipeline.codec import LATENT_SCALE, DiffusersVAECodec, FunctionCodec, VideoCodec
from singer_core.pipeline.generate import AudioTokens, ClipStream, GenerationResult, generate, iter_clips
from singer_core.pipeline.inputs import ReferenceInputs
from singer_core.pipeline.options import GenerationOptions
from singer_core.pipeline.progress import Progress
from singer_core.pipeline.schedulers import make_scheduler

__all__ = [
    "LATENT_SCALE",
    "AudioTokens",
    "ClipStream",
    "DiffusersVAECodec",
    "FunctionCodec",
    "GenerationOptions",
    "GenerationResult",
    "Progress",
    "ReferenceInputs",
    "VideoCodec",
    "generate",
    "iter_clips",
    "make_scheduler",
]
