"""The generation pipeline on the tiny fixture models: official parity, long songs, every option."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
import torch.nn.functional as F

from singer_core.checkpoint import load_net
from singer_core.errors import CancelledError, InputError
from singer_core.models.reference_rows import RowPlan
from singer_core.pipeline import (
    AudioTokens,
    DiffusersVAECodec,
    GenerationOptions,
    ReferenceInputs,
    generate,
    iter_clips,
)
from tests.conftest import assert_close, fixture_io
from tests.tiny_models.net import write_tiny_singer_checkpoint
from tests.tiny_models.vae import tiny_vae

SMALL = 64  # fast runs: latent 8x8
# Frames of a 3-clip song computed two ways whose reference-UNet batches differ (4 rows instead of 6): CPU
# convolution kernels may round a row differently with the batch size (oneDNN on an Intel Xeon with AMX; 3 threads
# instead of 2 on our AMD EPYC: 1.0e-3 here), a float16 bank entry moves by one fp16 ulp, and the tiny random net
# amplifies that from clip to clip through the motion frames. For scale, the plain 6-row pass itself moves by
# 1.7e-3 between 1, 2 and 3 threads (3e-5 in clip 1, 4e-4 in clip 2); serving a wrong reference row moves the
# frames by 0.18.
SONG_FRAMES_ATOL = 5e-3


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    path = write_tiny_singer_checkpoint(tmp_path_factory.mktemp("net") / "net.safetensors")
    return load_net(path)


@pytest.fixture(scope="module")
def io():
    return fixture_io("pipeline")


class RecordingCodec:
    """The tiny VAE codec, remembering what went in and out."""

    def __init__(self, batch_size: int = 1):
        self.inner = DiffusersVAECodec(tiny_vae(), batch_size=batch_size)
        self.downscale = self.inner.downscale
        self.encoded: list[torch.Tensor] = []
        self.decoded: list[torch.Tensor] = []

    def encode(self, images):
        self.encoded.append(images.detach().clone())
        return self.inner.encode(images)

    def decode(self, latents):
        out = self.inner.decode(latents)
        self.decoded.append(out.detach().clone())
        return out


def fixture_reference(io) -> ReferenceInputs:
    return ReferenceInputs(
        pixels=io["input.ref_image"][0, 0],
        face_embedding=io["input.face_emb"][0],
        face_region=io["input.face_region"][0],
        full_mask=[io[f"input.full_mask.{i}"] for i in range(4)],
        face_mask=[io[f"input.face_mask.{i}"] for i in range(4)],
        lip_mask=[io[f"input.lip_mask.{i}"] for i in range(4)],
    )


def small_reference(io, size: int = SMALL) -> ReferenceInputs:
    """The fixture reference resized to ``size`` (masks pooled to the smaller grids)."""
    ref = fixture_reference(io)

    def pool(mask, level):
        side = int(mask.shape[-1] ** 0.5)
        grid = mask[:1].view(1, 1, side, side)
        return F.adaptive_avg_pool2d(grid, size // (8 << level)).flatten(1)

    def resize(image):
        return F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False)[0]

    return ReferenceInputs(
        pixels=resize(ref.pixels).clamp(-1, 1),
        face_embedding=ref.face_embedding,
        face_region=resize(ref.face_region),
        full_mask=[pool(m, i) for i, m in enumerate(ref.full_mask)],
        face_mask=[pool(m, i) for i, m in enumerate(ref.face_mask)],
        lip_mask=[pool(m, i) for i, m in enumerate(ref.lip_mask)],
    )


def song(frames: int, seed: int = 0) -> AudioTokens:
    """Random audio windows in the tiny wav2vec layout [n, 5, 4 layers, 32]."""
    windows = torch.randn(frames, 5, 4, 32, generator=torch.manual_seed(seed))
    return AudioTokens(windows, frames)


def small_options(**overrides) -> GenerationOptions:
    base = dict(width=SMALL, height=SMALL, clip_length=4, motion_frames=2, steps=1)
    base.update(overrides)
    return GenerationOptions(**base)


# -- parity ----------------------------------------------------------------------------------------


def test_first_clip_matches_the_official_pipeline(net, io):
    """``pipeline`` fixture: official FaceAnimatePipeline, 3 DDIM steps, tiny models, seed 42."""
    options = GenerationOptions(width=256, height=256, clip_length=4, motion_frames=2, steps=3, seed=42)
    audio = AudioTokens(io["input.audio_windows"][0], audio_length=4)
    result = generate(net, DiffusersVAECodec(tiny_vae()), fixture_reference(io), audio, options)
    expected = io["output.videos"][0].permute(1, 2, 3, 0)  # [f, H, W, 3]
    assert_close(result.frames, expected, 1e-4, "videos")
    assert result.fps == 25


# -- long songs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_run(net, io):
    """10 frames with clips of 4 -> 3 clips (the last one padded and cut)."""
    codec, events = RecordingCodec(), []
    result = generate(net, codec, small_reference(io), song(10), small_options(), on_progress=events.append)
    return result, codec, events


def test_long_song_is_cut_to_the_audio_length(long_run):
    result, codec, _ = long_run
    assert result.frames.shape == (10, SMALL, SMALL, 3)
    assert [tuple(d.shape) for d in codec.decoded] == [(4, 3, SMALL, SMALL)] * 3  # one decode per clip
    assert 0 <= result.frames.min() and result.frames.max() <= 1


def test_later_clips_are_driven_by_the_last_decoded_frames(io, long_run):
    result, codec, _ = long_run
    assert len(codec.encoded) == 3  # one call per clip: [reference, 2 motion frames], as the official script
    reference = small_reference(io).pixels
    assert torch.equal(codec.encoded[0], reference.expand(3, -1, -1, -1))  # first clip: copies
    frames = result.frames.permute(0, 3, 1, 2)
    assert torch.equal(codec.encoded[1], torch.cat([reference[None], frames[2:4] * 2 - 1]))
    assert torch.equal(codec.encoded[2], torch.cat([reference[None], frames[6:8] * 2 - 1]))


@pytest.mark.parametrize(("size", "later_rows"), [(128, [4, 4]), (SMALL, [6, 6])])
def test_later_clips_reuse_the_reference_rows_with_the_same_video(net, io, monkeypatch, size, later_rows):
    """Clips 2 and 3 run only the 4 motion-frame rows of the write pass (the reference rows come from
    the previous clip), and the video equals running all 6 rows in every clip up to fp32 rounding (bit for bit
    where the CPU's kernels do not depend on the batch size). At 64x64 (deepest level one pixel, where rows
    change bits with the batch on every CPU) every row runs."""
    unet_class, rows_run = type(net.reference_unet), []
    run_rows = unet_class.run_rows
    monkeypatch.setattr(unet_class, "run_rows", lambda self, rows: rows_run.append(len(rows)) or run_rows(self, rows))
    options = small_options(width=size, height=size)
    reused = generate(net, RecordingCodec(), small_reference(io, size), song(10), options)
    assert rows_run[1:] == later_rows
    rows_run.clear()
    monkeypatch.setattr(RowPlan, "build", classmethod(lambda cls, rows, memo: cls.every_row(len(rows))))
    plain = generate(net, RecordingCodec(), small_reference(io, size), song(10), options)
    assert rows_run == [6, 6, 6]
    assert_close(reused.frames, plain.frames, SONG_FRAMES_ATOL, "frames with reused reference rows")


def test_progress_reports_every_step_and_clip(long_run):
    _, _, events = long_run
    assert [(e.kind, e.clip, e.step) for e in events] == [
        (kind, clip, step) for clip in range(3) for kind, step in [("step", 1), ("clip", 1)]
    ]
    assert events[-1].fraction == 1.0 and all(e.clips == 3 and e.steps == 1 for e in events)


def test_first_clip_does_not_depend_on_the_song_length(net, io, long_run):
    short = generate(net, RecordingCodec(), small_reference(io), AudioTokens(song(10).windows[:4], 4), small_options())
    assert torch.equal(short.frames, long_run[0].frames[:4])


def test_same_seed_same_output(net, io, long_run):
    again = generate(net, RecordingCodec(), small_reference(io), song(10), small_options())
    assert torch.equal(again.frames, long_run[0].frames)


def test_other_seed_other_output(net, io, long_run):
    other = generate(net, RecordingCodec(), small_reference(io), song(10), small_options(seed=7))
    assert (other.frames - long_run[0].frames).abs().max() > 1e-3


def test_latent_output_decodes_to_the_same_video(net, io, long_run):
    """Latent output decodes only the motion frames inside; decoding its latents afterwards gives the
    frames of the default path (per-frame decode both ways)."""
    codec = RecordingCodec()
    result = generate(net, codec, small_reference(io), song(10), small_options(), output="latents")
    assert result.frames is None and result.latents.shape == (10, 4, SMALL // 8, SMALL // 8)
    assert [d.shape[0] for d in codec.decoded] == [2, 2]  # only the motion frames of clips 2 and 3
    frames = codec.inner.decode(result.latents).permute(0, 2, 3, 1)
    assert torch.equal(frames, long_run[0].frames)


class WeakCodec:
    """The tiny VAE codec, keeping only weak references to the clips it decoded."""

    def __init__(self):
        self.inner = DiffusersVAECodec(tiny_vae())
        self.downscale = self.inner.downscale
        self.decoded: list[weakref.ref] = []

    def encode(self, images):
        return self.inner.encode(images)

    def decode(self, latents):
        out = self.inner.decode(latents)
        self.decoded.append(weakref.ref(out))
        return out


@pytest.mark.parametrize("overlap", [0, 1])
def test_iter_clips_hands_out_the_video_and_holds_one_clip(net, io, overlap):
    """The pieces add up to ``generate``'s video, bit for bit; while a piece is handed out, no earlier
    clip's frames are still held (memory bounded by a clip, not the song)."""
    codec, options = WeakCodec(), small_options(overlap=overlap)
    stream = iter_clips(net, codec, small_reference(io), song(10), options)
    assert (stream.frames, stream.fps) == (10, 25)
    pieces, held = [], []
    for piece in stream:
        gc.collect()
        held.append(sum(ref() is not None for ref in codec.decoded))
        pieces.append(piece.clone())
        del piece
    assert len(codec.decoded) == 3 and max(held) <= 2, held  # the clip being handed out (+ the one before it)
    whole = generate(net, RecordingCodec(), small_reference(io), song(10), options).frames
    assert torch.equal(torch.cat(pieces), whole)


def test_latent_output_refuses_colour_matching(net, io):
    with pytest.raises(InputError, match="color_match"):
        generate(net, RecordingCodec(), small_reference(io), song(4), small_options(color_match=True), output="latents")


# -- cancel and errors -----------------------------------------------------------------------------


def test_cancel_stops_between_steps(net, io):
    steps = []

    def on_progress(event):
        if event.kind == "step":
            steps.append((event.clip, event.step))

    with pytest.raises(CancelledError):
        generate(
            net, RecordingCodec(), small_reference(io), song(10), small_options(steps=3),
            on_progress=on_progress, should_cancel=lambda: len(steps) >= 4,
        )
    assert steps == [(0, 1), (0, 2), (0, 3), (1, 1)]


def test_reference_at_the_wrong_size_is_refused(net, io):
    with pytest.raises(InputError, match="output size"):
        generate(net, RecordingCodec(), fixture_reference(io), song(4), small_options())


def test_audio_with_the_wrong_layout_is_refused(net, io):
    with pytest.raises(InputError):
        audio = AudioTokens(torch.randn(4, 5, 12, 768), 4)
        generate(net, RecordingCodec(), small_reference(io), audio, small_options())
