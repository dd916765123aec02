"""Single-clip sampling: the official ``FaceAnimatePipeline.__call__`` (fixtures README section 6),
with typed inputs, explicit reference state, a per-step callback and cancellation.

Call order per clip (as the official pipeline): image tokens ``[imageproj(0), imageproj(emb)]``;
MSM once on the initial noise (quirk 6); face-locator features; the reference write pass
once at timestep 0 (quirk 5); then per step the CFG pair through the denoising UNet,
guidance, and the scheduler step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, DDIMScheduler

from singer_core.errors import CancelledError, InputError
from singer_core.models.conditions import DenoiseConditions, MaskPyramid
from singer_core.net import SingerNet

# The official scripts hard-code SD's factor instead of reading the VAE config (quirk 12).
LATENT_SCALE = 0.18215

# noise_scheduler_kwargs of configs/inference/inference.yaml with the zero-SNR overrides (quirk 11).
OFFICIAL_DDIM_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "clip_sample": False,
    "set_alpha_to_one": True,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
}

StepCallback = Callable[[int, int, torch.Tensor], None]  # (steps done, total steps, latents)
CancelCheck = Callable[[], bool]  # True -> stop with CancelledError


def official_scheduler() -> DDIMScheduler:
    """A fresh DDIM scheduler with the official configuration (schedulers hold per-run state)."""
    return DDIMScheduler(**OFFICIAL_DDIM_CONFIG)


@dataclass
class ClipInputs:
    """Everything one clip needs (batch 1).

    * ``ref_latents`` ``[1 + n_motion, 4, h, w]``: VAE ``latent_dist.mean * LATENT_SCALE`` of the
      reference image followed by the motion frames (``encode_reference``).
    * ``face_embedding`` ``[1, 512]``: insightface embedding of the reference face.
    * ``face_region`` ``[1, 3, H, W]`` in [0, 1]: face bounding-box mask (``H = 8 h``).
    * ``masks``: full / face / lip pyramids, 4 levels of ``[f, hw]``.
    * ``audio_tokens`` ``[1, f, 32, A]``: ``audioproj`` output for the clip's frames (before MSM).
    * ``noise`` ``[1, 4, f, h, w]``: unit Gaussian noise (scaled by the scheduler's
      ``init_noise_sigma`` here, as the official ``prepare_latents``).
    """

    ref_latents: torch.Tensor
    face_embedding: torch.Tensor
    face_region: torch.Tensor
    masks: MaskPyramid
    audio_tokens: torch.Tensor
    noise: torch.Tensor


@dataclass
class SamplingOptions:
    """``guidance_scale <= 1`` runs without classifier-free guidance (official ``do_classifier_free_guidance``)."""

    steps: int = 40
    guidance_scale: float = 3.5
    motion_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    eta: float = 0.0

    @property
    def cfg(self) -> bool:
        return classifier_free_guidance(self.guidance_scale)


def _check(clip: ClipInputs, options: SamplingOptions) -> None:
    if options.steps < 1:
        raise InputError(f"steps must be at least 1 (got {options.steps}).")
    frames, (height, width) = clip.noise.shape[2], clip.noise.shape[-2:]
    if clip.audio_tokens.shape[1] != frames:
        raise InputError(f"audio covers {clip.audio_tokens.shape[1]} frames but the clip has {frames}.")
    if tuple(clip.ref_latents.shape[-2:]) != (height, width):
        raise InputError(
            f"reference latents are {tuple(clip.ref_latents.shape[-2:])} but the noise is {(height, width)}."
        )


@torch.no_grad()
def clip_conditions(
    net: SingerNet, clip: ClipInputs, latents: torch.Tensor, motion_scale, cfg: bool = True
) -> DenoiseConditions:
    """Per-clip conditioning, CFG layout [uncond, cond] (cond only when ``cfg`` is False);
    ``latents`` are the initial ones (MSM input)."""
    cond_tokens = net.imageproj(clip.face_embedding)
    uncond_tokens = net.imageproj(torch.zeros_like(clip.face_embedding)) if cfg else None
    audio = clip.audio_tokens
    if net.audioembed is not None:
        audio = net.audioembed(audio, latents)
    face_features = net.face_locator(clip.face_region[:, :, None])  # one frame: same region in every frame
    bank = net.reference_unet.write_bank(clip.ref_latents, uncond_tokens, cond_tokens)
    return DenoiseConditions(
        bank=bank,
        image_tokens=torch.cat([uncond_tokens, cond_tokens]) if cfg else cond_tokens,
        audio_tokens=torch.cat([torch.zeros_like(audio), audio]) if cfg else audio,
        face_features=face_features,
        masks=clip.masks,
        motion_scale=tuple(float(s) for s in motion_scale),
    )


@torch.no_grad()
def predict_noise(net: SingerNet, latents: torch.Tensor, timestep, conditions: DenoiseConditions) -> torch.Tensor:
    """Denoising UNet on ``[1, 4, f, h, w]`` latents -> ``[halves, 4, f, h, w]`` ([uncond, cond] with CFG)."""
    halves = conditions.image_tokens.shape[0]
    return net.denoising_unet(latents.expand(halves, *latents.shape[1:]), timestep, conditions)


def guide(prediction: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance of an [uncond, cond] prediction (a lone cond prediction passes through)."""
    if prediction.shape[0] == 1:
        return prediction
    uncond, cond = prediction.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


@dataclass(frozen=True)
class DenoiseStep:
    """One finished denoising step: ``latents`` after it and, where the scheduler exposes it, its
    ``denoised`` estimate of the clean latents (for previews; None otherwise)."""

    step: int  # steps finished
    steps: int
    latents: torch.Tensor
    denoised: torch.Tensor | None = None


def classifier_free_guidance(guidance_scale: float) -> bool:
    """The official switch (``do_classifier_free_guidance = guidance_scale > 1.0``): at or below 1 only
    the conditional half runs, i.e. half the UNet work."""
    return guidance_scale > 1.0


def initial_latents(scheduler, steps: int, noise: torch.Tensor) -> torch.Tensor:
    """Set the scheduler's ``steps`` timesteps and scale unit ``noise`` by its ``init_noise_sigma``
    (the official ``set_timesteps`` + ``prepare_latents``)."""
    scheduler.set_timesteps(steps, device=noise.device)
    return noise * scheduler.init_noise_sigma


@torch.no_grad()
def denoise_clip(
    net: SingerNet,
    latents: torch.Tensor,
    conditions: DenoiseConditions,
    scheduler,
    guidance_scale: float,
    *,
    step_kwargs: dict | None = None,
    on_step: Callable[[DenoiseStep], None] | None = None,
    cancel: CancelCheck | None = None,
) -> torch.Tensor:
    """The clip-denoising loop of the official pipeline, shared by :func:`sample_clip` and the song
    pipeline (``singer_core.pipeline.generate``): per timestep the UNet on the CFG pair (or the
    conditional half alone, per ``conditions``), guidance, and the scheduler step.

    ``latents`` ``[1, 4, f, h, w]`` are the initial ones (:func:`initial_latents`, timesteps set);
    ``step_kwargs`` go to ``scheduler.step`` (DDIM's ``eta`` / ``generator``); ``cancel()`` is polled
    before every step. Returns the final latents.
    """
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        if cancel is not None and cancel():
            raise CancelledError("Generation cancelled.")
        model_input = scheduler.scale_model_input(latents, t)
        guided = guide(predict_noise(net, model_input, t, conditions), guidance_scale)
        output = scheduler.step(guided, t, latents, **(step_kwargs or {}))
        latents = output.prev_sample
        if on_step is not None:
            on_step(DenoiseStep(i + 1, len(timesteps), latents, _denoised(scheduler, output)))
    return latents


def _denoised(scheduler, output) -> torch.Tensor | None:
    """The step's clean-latent estimate: DDIM / Euler return it; DPM-Solver++ keeps it as its last model output."""
    denoised = getattr(output, "pred_original_sample", None)
    if denoised is None and getattr(scheduler.config, "algorithm_type", None) == "dpmsolver++":
        outputs = [x for x in getattr(scheduler, "model_outputs", []) if x is not None]
        denoised = outputs[-1] if outputs else None
    return denoised


@torch.no_grad()
def sample_clip(
    net: SingerNet,
    clip: ClipInputs,
    options: SamplingOptions | None = None,
    *,
    scheduler=None,
    callback: StepCallback | None = None,
    cancel: CancelCheck | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Denoise one clip; returns the final latents ``[1, 4, f, h, w]``.

    ``scheduler`` defaults to ``official_scheduler()``; any diffusers scheduler with the same
    ``set_timesteps`` / ``scale_model_input`` / ``step`` API works. ``generator`` is only
    used by stochastic schedulers (DDIM with ``eta > 0``).
    """
    options = options or SamplingOptions()
    _check(clip, options)
    scheduler = scheduler or official_scheduler()
    latents = initial_latents(scheduler, options.steps, clip.noise)
    conditions = clip_conditions(net, clip, latents, options.motion_scale, options.cfg)
    step_kwargs = {"eta": options.eta, "generator": generator} if isinstance(scheduler, DDIMScheduler) else {}
    on_step = None if callback is None else lambda state: callback(state.step, state.steps, state.latents)
    return denoise_clip(net, latents, conditions, scheduler, options.guidance_scale, step_kwargs=step_kwargs,
                        on_step=on_step, cancel=cancel)  # fmt: skip


@torch.no_grad()
def encode_reference(vae: AutoencoderKL, pixels: torch.Tensor) -> torch.Tensor:
    """``[n, 3, H, W]`` in [-1, 1] -> scaled latents ``[n, 4, H/8, W/8]`` (distribution mean, no sampling)."""
    return vae.encode(pixels).latent_dist.mean * LATENT_SCALE


@torch.no_grad()
def decode_video(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """``[1, 4, f, h, w] -> [1, 3, f, H, W]`` in [0, 1]; one frame per VAE call, as the official code."""
    frames = ((1 / LATENT_SCALE) * latents)[0].transpose(0, 1)
    video = torch.cat([vae.decode(frame[None]).sample for frame in frames])
    return (video / 2 + 0.5).clamp(0, 1).transpose(0, 1)[None]
