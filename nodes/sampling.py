"""The SINGER sampler: reference + audio tokens -> the video's latents, clip after clip."""

from __future__ import annotations

import comfy.utils
from comfy_api.latest import io

from singer_core.errors import InputError
from singer_core.pipeline import GenerationOptions, Progress, generate
from singer_core.pipeline.options import SCHEDULERS

from .comfy_codec import ComfyVAECodec, to_comfy_latent
from .devices import (
    DTYPE_CHOICES,
    cancel_requested,
    compute_device,
    interrupts_as_comfy,
    on_compute_device,
    resolve_dtype,
)
from .payloads import SingerAudio, SingerModel, SingerReference
from .sockets import SingerAudioSocket, SingerModelSocket, SingerReferenceSocket

LATENT_LAYOUT = (
    "LATENT layout: {'samples': [T, 4, H/8, W/8]}, one entry per video frame of the whole song (T = the song's "
    "frame count at 25 fps, already cut to the song length), in ComfyUI's raw VAE space (model latents / 0.18215), "
    "so 'SINGER Video Decode' or the core 'VAE Decode' turn it into T images."
)


class _ProgressToComfy:
    """Forwards the pipeline's step events to a ComfyUI progress bar (whose update also honours Cancel)."""

    def __init__(self) -> None:
        self.bar = comfy.utils.ProgressBar(1)

    def __call__(self, event: Progress) -> None:
        total = event.clips * event.steps
        self.bar.update_absolute(round(event.fraction * total), total)


class SingerSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerSampler",
            display_name="SINGER Sampler",
            category="SINGER/sampling",
            description="Generates the singing video's latents: clips of clip_length frames, each denoised by the "
            "SINGER UNet (motion, audio and spectral-filter modules) and chained to the previous one through its "
            "last motion_frames frames. " + LATENT_LAYOUT,
            inputs=[
                SingerModelSocket.Input("singer_model", tooltip="The network from 'Load SINGER Checkpoint'."),
                SingerAudioSocket.Input("singer_audio", tooltip="Audio tokens from 'SINGER Audio Encode'."),
                SingerReferenceSocket.Input("reference", tooltip="The portrait from 'SINGER Reference Encode'."),
                io.Int.Input("seed", default=42, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the initial noise of every clip (official: 42)."),
                io.Int.Input("steps", default=40, min=1, max=200,
                             tooltip="Denoising steps per clip (official: 40). Fewer is faster and rougher."),
                io.Float.Input("cfg", default=3.5, min=1.1, max=20.0, step=0.1,
                               tooltip="Classifier-free guidance scale (official 3.5): how strongly the audio and "
                               "the reference steer each step. SINGER always guides, so it must be above 1."),
                io.Float.Input("pose_weight", default=1.0, min=0.0, max=5.0, step=0.05,
                               tooltip="Strength of the audio on head pose and body (full-frame audio attention)."),
                io.Float.Input("face_weight", default=1.0, min=0.0, max=5.0, step=0.05,
                               tooltip="Strength of the audio on facial expression (face-region audio attention)."),
                io.Float.Input("lip_weight", default=1.0, min=0.0, max=5.0, step=0.05,
                               tooltip="Strength of the audio on the lips (lip-region audio attention)."),
                io.Int.Input("clip_length", default=16, min=1, max=128,
                             tooltip="Frames generated together (official 16); must equal the audio encode's "
                             "clip_length."),
                io.Int.Input("motion_frames", default=2, min=1, max=64,
                             tooltip="Frames of the previous clip that condition the next one (official 2)."),
                io.Combo.Input("scheduler", options=list(SCHEDULERS), default="ddim",
                               tooltip="Noise scheduler: ddim is the official one; dpmpp and euler are alternatives."),
                io.Combo.Input("dtype", options=list(DTYPE_CHOICES), default="auto",
                               tooltip="Number format while sampling: auto = fp16 on GPUs that do it well (the "
                               "official setting), else bf16, else fp32 (always fp32 on the CPU)."),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip=LATENT_LAYOUT),
                io.Float.Output(display_name="fps", tooltip="Frame rate of the video (25); connect to Create Video."),
            ],
        )

    @classmethod
    def execute(
        cls,
        singer_model: SingerModel,
        singer_audio: SingerAudio,
        reference: SingerReference,
        seed: int = 42,
        steps: int = 40,
        cfg: float = 3.5,
        pose_weight: float = 1.0,
        face_weight: float = 1.0,
        lip_weight: float = 1.0,
        clip_length: int = 16,
        motion_frames: int = 2,
        scheduler: str = "ddim",
        dtype: str = "auto",
    ) -> io.NodeOutput:
        features = singer_audio.features
        if features.clip_length != clip_length:
            raise InputError(
                f"clip_length is {clip_length} here but the audio was encoded with clip_length "
                f"{features.clip_length}; set both nodes to the same value."
            )
        options = GenerationOptions(
            seed=seed,
            steps=steps,
            guidance=cfg,
            pose_weight=pose_weight,
            face_weight=face_weight,
            lip_weight=lip_weight,
            clip_length=clip_length,
            motion_frames=motion_frames,
            fps=features.fps,
            width=reference.width,
            height=reference.height,
            dtype=resolve_dtype(dtype, compute_device()),
            scheduler=scheduler,
        )
        codec = ComfyVAECodec(reference.vae)
        with interrupts_as_comfy(), on_compute_device(singer_model.net):
            result = generate(
                singer_model.net,
                codec,
                reference.face,
                features,
                options,
                on_progress=_ProgressToComfy(),
                should_cancel=cancel_requested,
                output="latents",
            )
        return io.NodeOutput(to_comfy_latent(result.latents), float(result.fps))
