"""Validation videos through the product pipeline (``singer_core.pipeline.generate``), from dataset videos.

Each video's own prepared reference (its first frame, face embedding, face region, masks) and its audio features
drive a generation of ``validation.seconds``, so validation needs no face or audio model at training time.
"""

from __future__ import annotations

from pathlib import Path

import torch

from singer_core.pipeline.codec import DiffusersVAECodec
from singer_core.pipeline.generate import AudioTokens, generate
from singer_core.pipeline.inputs import ReferenceInputs
from singer_core.pipeline.options import GenerationOptions
from singer_core.precision import DTYPE_NAMES, weight_dtype
from singer_core.video_io import write_video


@torch.no_grad()
def validation_videos(net, vae, dataset, config, folder: Path, step: int) -> list[Path]:
    """Generate and write ``RUN/validation/step-<N>-<video id>.mp4`` for the first ``validation.videos``."""
    folder.mkdir(parents=True, exist_ok=True)
    val = config.validation
    # the format most weights are held in (the frozen ones); trainable float32 layers run under autocast
    dtype = weight_dtype(net)
    options = GenerationOptions(
        steps=val.steps, guidance=val.guidance, clip_length=val.clip_length, motion_frames=config.data.motion_frames,
        width=config.data.size, height=config.data.size, dtype=DTYPE_NAMES[dtype], seed=config.train.seed,
    )  # fmt: skip
    codec = DiffusersVAECodec(vae)
    written = []
    for video in list(dataset)[: val.videos]:
        frames = min(len(video), max(1, round(val.seconds * video.record.fps)))
        masks = video.masks
        reference = ReferenceInputs(
            pixels=video.pixel_values(0, 1)[0], face_embedding=video.face_embedding.float(),
            face_region=video.face_region, full_mask=list(masks.full), face_mask=list(masks.face),
            lip_mask=list(masks.lip),
        )  # fmt: skip
        audio = AudioTokens(windows=video.audio_windows(0, frames), audio_length=frames)
        result = generate(net, codec, reference, audio, options)
        samples = round(frames / video.record.fps * 16000)
        waveform = video.waveform[:samples][None]
        path = folder / f"step-{step}-{video.record.id}.mp4"
        written.append(write_video(path, result.frames, result.fps, waveform, 16000))
    return written
