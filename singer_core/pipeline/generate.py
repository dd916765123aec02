"""The whole song: clips of ``clip_length`` frames chained through motion frames (official default).

Per generation (once): image tokens, face-locator features, mask pyramids, audio tokens. Per clip:
initial noise from the one seeded generator (drawn in turn, as the official script does), MSM on
that noise, the reference-UNet write pass, the denoising steps (UNet call and guidance from
``singer_core.sampling``), decoding, and the latents of [reference, motion frames] for the next
clip (see ``_Run.clip_latents``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from singer_core.errors import InputError
from singer_core.models.conditions import DenoiseConditions
from singer_core.models.reference_rows import RowMemo
from singer_core.pipeline.clips import ClipSpan, FrameAssembler, plan_clips
from singer_core.pipeline.codec import VideoCodec
from singer_core.pipeline.color import match_color
from singer_core.pipeline.conditions import Conditions, build_conditions, project_audio
from singer_core.pipeline.inputs import ReferenceInputs
from singer_core.pipeline.options import GenerationOptions
from singer_core.pipeline.progress import Hooks, Progress
from singer_core.pipeline.schedulers import make_scheduler
from singer_core.precision import check_compute_dtype
from singer_core.sampling import guide, predict_noise


@dataclass
class AudioTokens:
    """Per-frame audio windows of a song, already cut into windows.

    ``windows`` [n, 5, layers, hidden]; ``audio_length`` frames are kept in the output, frames past
    it (official zero padding) are generated and cut. ``singer_core.audio.AudioFeatures`` has the same
    interface (``audio_length``, ``frames``, ``window_slice``) and can be passed instead, which avoids
    materialising every window of a long song.
    """

    windows: torch.Tensor
    audio_length: int

    @property
    def frames(self) -> int:
        return self.windows.shape[0]

    def window_slice(self, start: int, stop: int) -> torch.Tensor:
        """Windows of frames ``start..stop-1``; frames past the end repeat the last window."""
        index = torch.arange(start, stop).clamp(max=self.frames - 1)
        return self.windows[index]


OUTPUTS = ("frames", "latents")


@dataclass
class GenerationResult:
    """``T`` = the song's frame count. ``output='frames'``: ``frames`` [T, H, W, 3] float32 in [0, 1]
    on the CPU. ``output='latents'``: ``latents`` [T, 4, h, w] float32 on the CPU in model space
    (VAE latent mean × 0.18215), for hosts that decode separately; ``frames`` is then None."""

    frames: torch.Tensor | None
    fps: int
    latents: torch.Tensor | None = None


def _release(device: torch.device) -> None:
    """Return freed blocks to the GPU between stages (tensors themselves are freed by ``del``)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _Run:
    """State of one generation (kept together so each stage is a short method)."""

    def __init__(
        self, net, codec: VideoCodec, reference: ReferenceInputs, options: GenerationOptions, hooks: Hooks, output: str
    ):
        param = next(net.parameters())
        self.net, self.codec, self.options, self.hooks, self.output = net, codec, options, hooks, output
        self.device, self.dtype = param.device, options.torch_dtype  # compute dtype; the net is never cast
        self.reference = reference
        self.latent_size = (options.height // codec.downscale, options.width // codec.downscale)
        self.generator = torch.Generator("cpu").manual_seed(options.seed)
        self.row_memo = RowMemo()  # reference rows of the write pass, the same in every clip

    # -- once per generation ------------------------------------------------------------------------

    def conditions(self) -> Conditions:
        return build_conditions(self.net, self.reference, self.options.clip_length, self.device, self.dtype)

    def first_clip_latents(self) -> torch.Tensor:
        """``[1 + n, 4, h, w]``: the reference and its ``n`` copies as the first clip's motion frames,
        encoded in one call as the official script does."""
        pixels = self.reference.pixels[None].float().expand(1 + self.options.motion_frames, -1, -1, -1)
        return self.codec.encode(pixels).to(self.device, self.dtype)

    def reference_bank(self, ref_latents: torch.Tensor, conditions: Conditions):
        """Reference-UNet write pass (timestep 0) for this clip's [reference, motion frames]; the
        reference rows are computed in the first clip only (bit-identical inputs, see ``RowMemo``)."""
        tokens = conditions.image_tokens
        return self.net.reference_unet.write_bank(ref_latents, tokens[:1], tokens[1:], self.row_memo)

    def audio_tokens(self, audio: AudioTokens, spans: list[ClipSpan]) -> torch.Tensor:
        """Audio-projection tokens ``[n, 32, dim]`` of every frame the clips cover, kept on the CPU
        (an overlap may reach past the official padding: those windows are clamped to the song end)."""
        length = self.options.clip_length
        parts = [
            project_audio(self.net, audio.window_slice(start, min(start + length, spans[-1].stop)), self.device,
                          self.dtype, length).cpu()
            for start in range(0, spans[-1].stop, length)
        ]  # fmt: skip
        return torch.cat(parts)

    # -- once per clip -------------------------------------------------------------------------------

    def initial_noise(self) -> torch.Tensor:
        """``[1, 4, f, h, w]`` drawn from the one CPU generator (device-independent, official order)."""
        shape = (1, 4, self.options.clip_length, *self.latent_size)
        return torch.randn(shape, generator=self.generator, dtype=torch.float32).to(self.device, self.dtype)

    def audio_embedding(self, tokens: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``[2, f, 32, dim]``: [zeros, MSM(tokens, initial noise)] (quirk 6); Hallo nets skip MSM."""
        clip_tokens = tokens[None].to(self.device)
        if getattr(self.net, "audioembed", None) is not None:
            clip_tokens = self.net.audioembed(clip_tokens, noise)
        return torch.cat([torch.zeros_like(clip_tokens), clip_tokens])

    def clip_latents(self, frames: FrameAssembler, span: ClipSpan, first: torch.Tensor, previous: torch.Tensor):
        """``[1 + n, 4, h, w]`` for a later clip: the reference and the ``n`` frames before ``span``.

        ``decoded`` (official): those decoded frames × 2 − 1, encoded together with the reference in
        one call exactly as the official script does, so the latents are bit-identical to its path
        (encoding the reference alone differs by ~1e-7). ``latent``: the reference latent of the first
        clip and the previous clip's own latents of those frames, no VAE round trip.
        """
        n = self.options.motion_frames
        if self.options.motion_source == "latent":
            stride = self.options.clip_stride
            return torch.cat([first[:1], previous[0, :, stride - n : stride].transpose(0, 1)])
        pixels = self.motion_pixels(frames, span.start - n, span.start) * 2.0 - 1.0  # [n, 3, H, W]
        batch = torch.cat([self.reference.pixels[None].float(), pixels.to(self.reference.pixels.device)])
        return self.codec.encode(batch).to(self.device, self.dtype)

    def clip_output(self, latents: torch.Tensor) -> torch.Tensor:
        """What is kept of a finished clip: its decoded frames, or (``output='latents'``) its latents
        ``[f, 4, h, w]`` on the CPU, which the host decodes later."""
        if self.output == "latents":
            return latents[0].transpose(0, 1).float().cpu()
        return self.decode(latents)

    def motion_pixels(self, kept: FrameAssembler, start: int, stop: int) -> torch.Tensor:
        """Decoded frames ``[start, stop)`` in [0, 1]; in latent output only these few are decoded
        (per frame, as the official decode), which gives the same pixels as decoding everything."""
        window = kept.window(start, stop)
        if self.output == "latents":
            window = self.codec.decode(window.to(self.device)).float().cpu()
        return window

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``[1, 4, f, h, w]`` -> frames ``[f, 3, H, W]`` in [0, 1] (CPU float32), colour-matched if asked."""
        frames = self.codec.decode(latents[0].transpose(0, 1)).float().cpu()
        if self.options.color_match:
            frames = match_color(frames, (self.reference.pixels.float().cpu() + 1) / 2)
        return frames


def generate(
    net,
    codec: VideoCodec,
    reference: ReferenceInputs,
    audio: AudioTokens,  # or singer_core.audio.AudioFeatures
    options: GenerationOptions | None = None,
    on_progress=None,
    should_cancel=None,
    output: str = "frames",
) -> GenerationResult:
    """Generate the video for a whole song.

    ``net``: a loaded ``SingerNet`` (SINGER or Hallo), on the device to run on, stored in
    ``options.dtype``; it is never modified (see :mod:`singer_core.precision`).
    ``codec``: see :class:`~singer_core.pipeline.codec.VideoCodec`.
    ``on_progress(Progress)`` is called after every denoising step and every clip;
    ``should_cancel()`` is polled before every step and raises :class:`CancelledError` when true.
    ``output``: ``'frames'`` (decoded video) or ``'latents'`` (see :class:`GenerationResult`).
    """
    options = options or GenerationOptions()
    options.validate()
    if output not in OUTPUTS:
        raise InputError(f"output must be one of {', '.join(OUTPUTS)} (got {output!r}).")
    if output == "latents" and options.color_match:
        raise InputError("Colour matching works on decoded frames: turn color_match off for latent output.")
    check_compute_dtype(net, options.torch_dtype)
    reference = ReferenceInputs.of(reference)
    reference.validate(options.width, options.height)
    if audio.audio_length < 1 or audio.frames < 1:
        raise InputError("The audio covers no video frame; use a longer song.")
    hooks = Hooks(on_progress, should_cancel)
    run = _Run(net, codec, reference, options, hooks, output)
    spans = plan_clips(audio.audio_length, options.clip_length, options.overlap)
    with torch.no_grad():
        hooks.check_cancel()
        conditions = run.conditions()
        tokens = run.audio_tokens(audio, spans)
        first = run.first_clip_latents()
        _release(run.device)
        kept = _generate_clips(run, spans, conditions, tokens, first)
    kept = kept[: audio.audio_length]  # the official cut back to the song length
    if output == "latents":
        return GenerationResult(None, options.fps, latents=kept)
    return GenerationResult(kept.permute(0, 2, 3, 1).contiguous(), options.fps)


def _generate_clips(run: _Run, spans, conditions: Conditions, tokens: torch.Tensor, first: torch.Tensor):
    options, hooks = run.options, run.hooks
    assembler = FrameAssembler(options.overlap)
    latents = None
    for span in spans:
        noise = run.initial_noise()
        ref_latents = first if span.index == 0 else run.clip_latents(assembler, span, first, latents)
        audio_embedding = run.audio_embedding(tokens[span.start : span.stop], noise)

        def on_step(step: int, steps: int, denoised=None, clip: int = span.index) -> None:
            hooks.report(Progress("step", clip, len(spans), step, steps, denoised))

        bank = run.reference_bank(ref_latents, conditions)
        denoise = DenoiseConditions(
            bank=bank,
            image_tokens=conditions.image_tokens,
            audio_tokens=audio_embedding,
            face_features=conditions.face_features,
            masks=conditions.masks,
            motion_scale=tuple(options.motion_scale),
        )
        latents = _sample_clip(run, denoise, noise, on_step)
        del audio_embedding, ref_latents, bank, denoise
        assembler.add(run.clip_output(latents))
        hooks.report(Progress("clip", span.index, len(spans), options.steps, options.steps))
        _release(run.device)
    return assembler.result()


def _sample_clip(run: _Run, conditions: DenoiseConditions, noise: torch.Tensor, on_step) -> torch.Tensor:
    """Denoise one clip from unit ``noise`` [1, 4, f, h, w] with conditions prepared once per generation
    (``sampling.sample_clip`` would rebuild the image tokens and face features for every clip); the
    UNet call on the CFG pair and the guidance are ``sampling``'s."""
    options, hooks = run.options, run.hooks
    scheduler = make_scheduler(options.scheduler)
    scheduler.set_timesteps(options.steps, device=run.device)
    latents = noise * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        hooks.check_cancel()
        model_input = scheduler.scale_model_input(latents, t)
        guided = guide(predict_noise(run.net, model_input, t, conditions), options.guidance)
        stepped = scheduler.step(guided, t, latents)
        latents = stepped.prev_sample
        on_step(i + 1, len(scheduler.timesteps), _denoised(scheduler, stepped))
    return latents


def _denoised(scheduler, stepped) -> torch.Tensor | None:
    """The x0 prediction of the step just taken, for previews: DDIM's and Euler's own
    ``pred_original_sample``; DPM-Solver++ keeps it as its last converted model output."""
    denoised = getattr(stepped, "pred_original_sample", None)
    if denoised is None and getattr(scheduler, "model_outputs", None):
        denoised = scheduler.model_outputs[-1]
    return denoised
