"""The SINGER sampler: reference + audio tokens -> the video's latents, clip after clip."""

from __future__ import annotations

import comfy.latent_formats
import comfy.utils
import latent_preview
from comfy_api.latest import io

from singer_core.pipeline import GenerationOptions, Progress, generate
from singer_core.pipeline.clips import plan_clips
from singer_core.pipeline.memory import WorkShape, estimate_working_memory
from singer_core.pipeline.options import SCHEDULERS
from singer_core.precision import dtype_name, weight_dtype

from .comfy_codec import ComfyVAECodec, to_comfy_latent
from .compat import expert
from .devices import DTYPE_CHOICES, cancel_requested, interrupts_as_comfy, working
from .payloads import SingerAudio, SingerModel, SingerReference
from .resume import open_state
from .sockets import SingerAudioSocket, SingerModelSocket, SingerReferenceSocket

LATENT_LAYOUT = (
    "LATENT layout: {'samples': [T, 4, H/8, W/8]}, one entry per video frame of the whole song (T = the song's "
    "frame count at 25 fps, already cut to the song length), in ComfyUI's raw VAE space (model latents / 0.18215), "
    "so 'SINGER Video Decode' or the core 'VAE Decode' turn it into T images."
)


class _ProgressToComfy:
    """Forwards the pipeline's step events to ComfyUI as ``latent_preview.prepare_callback`` does: the progress
    bar over the whole song, clips x steps (whose update also honours Cancel), the running clip as the node's
    progress text (``clip K/N``; where the host has no progress text, the server log says it at each clip) and,
    when previews are on (``--preview-method``), a preview of the
    current denoised estimate (x0) of the clip's middle frame through ComfyUI's previewer for SD 1.5 latents
    (SINGER denoises SD 1.5 VAE latents scaled by 0.18215, ComfyUI's ``SD15`` format): TAESD when
    ``taesd_decoder`` is in models/vae_approx, else latent2rgb. A resumed render's bar starts at its restored
    clips."""

    def __init__(self, device, clips: int, steps: int) -> None:
        self.total = clips * steps
        self.previewer = latent_preview.get_previewer(device, comfy.latent_formats.SD15())
        self.bar = comfy.utils.ProgressBar(self.total)
        self.shown_clip = -1
        self.skipped = 0

    def __call__(self, event: Progress) -> None:
        if event.kind == "resume":
            self.skipped = event.clip
            self.bar.update_absolute(event.clip * event.steps, self.total)
            return
        if event.kind != "step":
            return
        if event.clip != self.shown_clip:
            self.shown_clip = event.clip
            resumed = f" (resumed: {self.skipped} clips from disk)" if self.skipped else ""
            _progress_text(f"clip {event.clip + 1}/{event.clips}{resumed}")
        preview = None
        if self.previewer is not None and event.denoised is not None:
            middle = event.denoised[:, :, event.denoised.shape[2] // 2].float()  # [1, 4, h, w]
            preview = self.previewer.decode_latent_to_preview_image("JPEG", middle)
        self.bar.update_absolute(event.clip * event.steps + event.step, self.total, preview)


def _progress_text(text: str) -> None:
    """The node's progress text (``PromptServer.send_progress_text``, newer hosts), else a server log line."""
    try:
        from comfy_execution.utils import get_executing_context
        from server import PromptServer

        context = get_executing_context()
        PromptServer.instance.send_progress_text(text, context.node_id)
    except (ImportError, AttributeError):
        print(f"[SINGER Sampler] {text}", flush=True)


class SingerSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerSampler",
            display_name="SINGER Sampler",
            category="SINGER/sampling",
            description="Generates the singing video's latents: clips of the audio encode's clip_length frames, "
            "each denoised by the "
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
                io.Float.Input("cfg", default=3.5, min=1.0, max=20.0, step=0.1,
                               tooltip="Classifier-free guidance scale (official 3.5): how strongly the audio and "
                               "the reference steer each step. 1.0 = no guidance (the official no-CFG branch): "
                               "half the UNet work, weaker lip sync."),
                io.Float.Input("pose_weight", default=1.0, min=0.0, max=5.0, step=0.05,
                               tooltip="Strength of the audio on head pose and body (full-frame audio attention)."),
                io.Float.Input("face_weight", default=1.0, min=0.0, max=5.0, step=0.05,
                               tooltip="Strength of the audio on facial expression (face-region audio attention)."),
                io.Float.Input("lip_weight", default=1.0, min=0.0, max=5.0, step=0.05,
                               tooltip="Strength of the audio on the lips (lip-region audio attention)."),
                io.Int.Input("motion_frames", default=2, min=1, max=64, **expert(io.Int.Input),
                             tooltip="Frames of the previous clip that condition the next one (official 2)."),
                io.Combo.Input("scheduler", options=list(SCHEDULERS), default="ddim", **expert(io.Combo.Input),
                               tooltip="Noise scheduler: ddim is the official one; dpmpp and euler are alternatives."),
                io.Combo.Input("dtype", options=list(DTYPE_CHOICES), default="auto", **expert(io.Combo.Input),
                               tooltip="Number format of the sampling: auto = the format the checkpoint loader "
                               "loaded the net in (set it there). Another value must match it: the sampler never "
                               "converts the loaded net."),
                io.Boolean.Input("resume", default=True, optional=True,
                                 tooltip="Keep the render on disk clip by clip (ComfyUI/user/singer_resume/): queueing "
                                 "the same graph again after Cancel, an error or a server restart continues from the "
                                 "last finished clip, with the same latents. Off: this graph's kept state is deleted "
                                 "and none is kept. Any change of model, audio, reference or option starts afresh; "
                                 "unfinished renders older than 7 days are deleted."),
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
        motion_frames: int = 2,
        scheduler: str = "ddim",
        dtype: str = "auto",
        resume: bool = True,
    ) -> io.NodeOutput:
        features = singer_audio.features
        net = singer_model.net
        options = GenerationOptions(
            seed=seed,
            steps=steps,
            guidance=cfg,
            pose_weight=pose_weight,
            face_weight=face_weight,
            lip_weight=lip_weight,
            clip_length=features.clip_length,  # set once, by the audio encode
            motion_frames=motion_frames,
            fps=features.fps,
            width=reference.width,
            height=reference.height,
            dtype=dtype_name(weight_dtype(net)) if dtype == "auto" else dtype,
            scheduler=scheduler,
        )
        shape = WorkShape(width=options.width, height=options.height, clip_length=options.clip_length,
                          motion_frames=options.motion_frames, cfg=options.guidance > 1.0,
                          dtype=options.torch_dtype)
        codec = ComfyVAECodec(reference.vae)
        clips = len(plan_clips(features.audio_length, options.clip_length, options.overlap))
        with interrupts_as_comfy(), working([singer_model.patcher], estimate_working_memory(net.config, shape)) as dev:
            state = open_state(singer_model.source_path, reference.vae, reference.face, features, options, dev, resume,
                               clips)  # fmt: skip
            result = generate(
                net,
                codec,
                reference.face,
                features,
                options,
                on_progress=_ProgressToComfy(dev, clips, options.steps),
                should_cancel=cancel_requested,
                output="latents",
                resume=state,
            )
        if state is not None:
            state.remove()  # finished: ComfyUI caches the output from here on
        return io.NodeOutput(to_comfy_latent(result.latents), float(result.fps))

