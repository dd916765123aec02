"""The whole song: clips of ``clip_length`` frames chained through motion frames (official default).

Per generation (once): image tokens, face-locator features, mask pyramids, audio tokens. Per clip:
initial noise from the one seeded generator (drawn in turn, as the official script does), MSM on
that noise, the reference-UNet write pass, the denoising steps (UNet call and guidance from
``singer_core.sampling``), decoding, and the latents of [reference, motion frames] for the next
clip (see ``_Run.clip_latents``).

:func:`iter_clips` hands out each clip's frames as soon as they are final (after any overlap blend),
so a caller that writes them away (the command line's mp4 writer) holds one clip, not the song;
:func:`generate` collects them into one tensor for callers that want the whole video.
"""

from __future__ import annotations

from collections.abc import Iterator
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
from singer_core.pipeline.resume import Carry, RenderState
from singer_core.pipeline.schedulers import make_scheduler
from singer_core.precision import check_compute_dtype
from singer_core.sampling import DenoiseStep, classifier_free_guidance, denoise_clip, initial_latents


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


class _ClipTokens:
    """The song's audio tokens, projected chunk by chunk as the clips reach them, so only a clip's worth
    is held. Chunks are ``clip_length`` frames starting at multiples of it (the official per-clip
    ``audioproj`` call), the last one ending at ``stop`` (an overlap may reach past the official
    padding: those windows are clamped to the song end); a clip that straddles two chunks (overlap)
    takes its frames from both, so the tokens are the same bits as projecting the whole song up front.
    """

    def __init__(self, run: _Run, audio, length: int, stop: int) -> None:
        self.run, self.audio, self.length, self.stop = run, audio, length, stop
        self.chunks: dict[int, torch.Tensor] = {}

    def _chunk(self, start: int) -> torch.Tensor:
        if start not in self.chunks:
            run = self.run
            windows = self.audio.window_slice(start, min(start + self.length, self.stop))
            self.chunks[start] = project_audio(run.net, windows, run.device, run.dtype, self.length).cpu()
        return self.chunks[start]

    def __getitem__(self, frames: slice) -> torch.Tensor:
        """Tokens of frames ``[frames.start, frames.stop)`` (a clip's span); earlier chunks are dropped."""
        first = frames.start - frames.start % self.length
        for start in [k for k in self.chunks if k < first]:
            del self.chunks[start]
        parts = [self._chunk(start) for start in range(first, frames.stop, self.length)]
        return torch.cat(parts)[frames.start - first : frames.stop - first]


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
        self.cfg = classifier_free_guidance(options.guidance)  # False: the conditional half alone
        self.state: RenderState | None = None  # the render kept on disk clip by clip, if asked

    # -- once per generation ------------------------------------------------------------------------

    def conditions(self) -> Conditions:
        return build_conditions(self.net, self.reference, self.options.clip_length, self.device, self.dtype, self.cfg)

    def first_clip_latents(self) -> torch.Tensor:
        """``[1 + n, 4, h, w]``: the reference and its ``n`` copies as the first clip's motion frames,
        encoded in one call as the official script does."""
        pixels = self.reference.pixels[None].float().expand(1 + self.options.motion_frames, -1, -1, -1)
        return self.codec.encode(pixels).to(self.device, self.dtype)

    def reference_bank(self, ref_latents: torch.Tensor, conditions: Conditions):
        """Reference-UNet write pass (timestep 0) for this clip's [reference, motion frames]; the
        reference rows are computed in the first clip only (bit-identical inputs, see ``RowMemo``)."""
        tokens = conditions.image_tokens
        uncond = tokens[:1] if self.cfg else None
        return self.net.reference_unet.write_bank(ref_latents, uncond, tokens[-1:], self.row_memo)

    def audio_tokens(self, audio: AudioTokens, spans: list[ClipSpan]) -> _ClipTokens:
        """Audio-projection tokens ``[n, 32, dim]`` of the frames each clip covers, projected when a
        clip needs them (see :class:`_ClipTokens`)."""
        return _ClipTokens(self, audio, self.options.clip_length, spans[-1].stop)

    # -- once per clip -------------------------------------------------------------------------------

    def initial_noise(self) -> torch.Tensor:
        """``[1, 4, f, h, w]`` drawn from the one CPU generator (device-independent, official order)."""
        shape = (1, 4, self.options.clip_length, *self.latent_size)
        return torch.randn(shape, generator=self.generator, dtype=torch.float32).to(self.device, self.dtype)

    def audio_embedding(self, tokens: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``[2, f, 32, dim]``: [zeros, MSM(tokens, initial noise)] (quirk 6); without CFG the second
        half alone. Hallo nets skip MSM."""
        clip_tokens = tokens[None].to(self.device)
        if getattr(self.net, "audioembed", None) is not None:
            clip_tokens = self.net.audioembed(clip_tokens, noise)
        return torch.cat([torch.zeros_like(clip_tokens), clip_tokens]) if self.cfg else clip_tokens

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

    def piece(self, final: torch.Tensor) -> torch.Tensor:
        """A final piece in the caller's layout: frames ``[n, H, W, 3]``, latents ``[n, 4, h, w]``."""
        return final if self.output == "latents" else final.permute(0, 2, 3, 1).contiguous()

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


@dataclass
class ClipStream:
    """The video of a song, handed out piece by piece (see :func:`iter_clips`).

    ``frames``: the song's frame count ``T`` (what the pieces add up to); iterating yields, in order,
    ``[n, H, W, 3]`` float32 frames in [0, 1] on the CPU (``output='frames'``) or ``[n, 4, h, w]``
    latents (``output='latents'``). Iterate once: the generation runs as the pieces are taken.
    With a :class:`RenderState`, frames are handed out as uint8 (what is kept on disk), and ``resumed``
    clips come from disk first (``clips``: the song's clip count).
    """

    fps: int
    frames: int
    output: str
    pieces: Iterator[torch.Tensor]
    clips: int = 0
    resumed: int = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.pieces


def iter_clips(
    net,
    codec: VideoCodec,
    reference: ReferenceInputs,
    audio: AudioTokens,  # or singer_core.audio.AudioFeatures
    options: GenerationOptions | None = None,
    on_progress=None,
    should_cancel=None,
    output: str = "frames",
    resume: RenderState | None = None,
) -> ClipStream:
    """Generate the video of a whole song, clip by clip, without holding it whole.

    Arguments as :func:`generate`; the inputs are checked here, before anything runs. Each piece is
    final when handed out (overlaps already blended, frames past the song cut), and only the few
    frames the next clip is driven by are kept, so the memory does not grow with the song (the
    song's audio tokens and, for ``'latents'``, the pieces the caller keeps aside).

    ``net`` is never modified: it computes in the format it was loaded in, ``options.dtype`` (see
    :mod:`singer_core.precision`). ``resume``: keep the render on disk clip by clip and go on from what it
    holds (see :mod:`singer_core.pipeline.resume`); opened here, so a refused resume fails before any work.
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
    run = _Run(net, codec, reference, options, Hooks(on_progress, should_cancel), output)
    spans = plan_clips(audio.audio_length, options.clip_length, options.overlap)
    if resume is not None:
        run.state = resume
        resume.open(len(spans))
    resumed = 0 if resume is None else resume.resume_at
    return ClipStream(options.fps, audio.audio_length, output, _pieces(run, audio, spans), len(spans), resumed)


def generate(
    net,
    codec: VideoCodec,
    reference: ReferenceInputs,
    audio: AudioTokens,  # or singer_core.audio.AudioFeatures
    options: GenerationOptions | None = None,
    on_progress=None,
    should_cancel=None,
    output: str = "frames",
    resume: RenderState | None = None,
) -> GenerationResult:
    """Generate the video for a whole song and return it whole (see :func:`iter_clips` to write it
    away clip by clip instead: the whole video of a song is ``T x H x W x 3 x 4`` bytes).

    ``net``: a loaded ``SingerNet`` (SINGER or Hallo), on the device to run on, stored in
    ``options.dtype``; it is never modified (see :mod:`singer_core.precision`).
    ``codec``: see :class:`~singer_core.pipeline.codec.VideoCodec`.
    ``on_progress(Progress)`` is called after every denoising step and every clip;
    ``should_cancel()`` is polled before every step and raises :class:`CancelledError` when true.
    ``output``: ``'frames'`` (decoded video) or ``'latents'`` (see :class:`GenerationResult`).
    ``resume``: see :func:`iter_clips` (frames then come back as uint8).
    """
    stream = iter_clips(net, codec, reference, audio, options, on_progress, should_cancel, output, resume)
    if output == "latents":
        return GenerationResult(None, stream.fps, latents=torch.cat(list(stream)))
    frames, done = None, 0
    for piece in stream:  # one preallocated copy of the video, filled piece by piece
        if frames is None:
            frames = torch.empty(stream.frames, *piece.shape[1:], dtype=piece.dtype)
        frames[done : done + piece.shape[0]] = piece
        done += piece.shape[0]
    return GenerationResult(frames, stream.fps)


def _pieces(run: _Run, audio, spans: list[ClipSpan]) -> Iterator[torch.Tensor]:
    """Run the generation; yield the final pieces, cut to the song length (the official cut). With a
    :class:`RenderState`, the clips it restored are handed out from disk first and generation goes on from
    the state the last of them left (see :mod:`singer_core.pipeline.resume`)."""
    with torch.no_grad():
        run.hooks.check_cancel()
        conditions = run.conditions()
        tokens = run.audio_tokens(audio, spans)
        first = run.first_clip_latents()
        _release(run.device)
    assembler = FrameAssembler(run.options.overlap, history=run.options.motion_frames)
    state, latents, start = run.state, None, 0
    if state is not None and state.resume_at:
        for piece in state.pieces():
            if piece is not None:
                yield piece
        latents, first = _restore(run, state.carry(), assembler)
        start = state.resume_at
        run.hooks.report(Progress("resume", start, len(spans), 0, run.options.steps))
    for span in spans[start:]:
        with torch.no_grad():
            latents = _clip(run, span, len(spans), conditions, tokens, first, latents, assembler)
            piece = _song_cut(run, audio, assembler, assembler.add(run.clip_output(latents)))
        if state is not None:
            state.save(span.index, piece, _carry(run, span, assembler, first, latents))
        run.hooks.report(Progress("clip", span.index, len(spans), run.options.steps, run.options.steps))
        _release(run.device)
        if piece is not None:
            yield piece
    tail = assembler.finish()
    if tail is not None and (piece := _song_cut(run, audio, assembler, tail)) is not None:
        yield piece


def _song_cut(run: _Run, audio, assembler: FrameAssembler, final: torch.Tensor) -> torch.Tensor | None:
    """The part of ``final`` (just handed out by ``assembler``) inside the song, in the caller's layout
    (uint8 frames when the render is kept on disk: what is stored is what is handed out); None if nothing."""
    keep = min(final.shape[0], audio.audio_length - (assembler.count - final.shape[0]))
    if keep <= 0:
        return None
    piece = run.piece(final[:keep])
    if run.state is not None and run.output == "frames":
        from singer_core.video_io import frames_to_uint8

        piece = torch.from_numpy(frames_to_uint8(piece))
    return piece


def _carry(run: _Run, span: ClipSpan, assembler: FrameAssembler, first: torch.Tensor, latents: torch.Tensor) -> Carry:
    """What the clip after ``span`` starts from (the tensors themselves: restored, they are the same bits)."""
    previous = latents if run.options.motion_source == "latent" else None
    return Carry(span.index + 1, run.generator.get_state(), assembler.count, first, recent=assembler.recent,
                 pending=assembler.pending, previous=previous)  # fmt: skip


def _restore(run: _Run, carry: Carry, assembler: FrameAssembler) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Put the saved state back: the generator, the assembler's held frames; returns (the last clip's
    latents or None, the first clip's latents), on the run's device."""
    run.generator.set_state(carry.generator)
    assembler.count, assembler.recent, assembler.pending = carry.count, carry.recent, carry.pending
    previous = None if carry.previous is None else carry.previous.to(run.device)
    return previous, carry.first.to(run.device)


def _clip(run: _Run, span: ClipSpan, clips: int, conditions: Conditions, tokens: _ClipTokens, first: torch.Tensor,
          previous: torch.Tensor | None, assembler: FrameAssembler) -> torch.Tensor:  # fmt: skip
    """The final latents ``[1, 4, f, h, w]`` of one clip."""
    options, hooks = run.options, run.hooks
    noise = run.initial_noise()
    ref_latents = first if span.index == 0 else run.clip_latents(assembler, span, first, previous)
    audio_embedding = run.audio_embedding(tokens[span.start : span.stop], noise)

    def on_step(state: DenoiseStep) -> None:
        hooks.report(Progress("step", span.index, clips, state.step, state.steps, state.denoised))

    denoise = DenoiseConditions(
        bank=run.reference_bank(ref_latents, conditions),
        image_tokens=conditions.image_tokens,
        audio_tokens=audio_embedding,
        face_features=conditions.face_features,
        masks=conditions.masks,
        motion_scale=tuple(options.motion_scale),
    )
    scheduler = make_scheduler(options.scheduler)
    latents = initial_latents(scheduler, options.steps, noise)
    return denoise_clip(run.net, latents, denoise, scheduler, options.guidance, on_step=on_step,
                        cancel=hooks.should_cancel)  # fmt: skip
