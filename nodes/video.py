"""Latents -> video with ComfyUI's VAE: all frames as an IMAGE batch, or a VIDEO decoded and encoded
clip by clip when it is saved (memory independent of the song's length).

The VIDEO (:class:`LatentVideo`) implements ComfyUI's whole ``VideoInput`` interface of 0.3.75 to 0.38.1
itself, streaming batch by batch (docs/comfyui_compat.md): Save Video in every container/codec/CRF/preset,
trim, crop and resize as lazy edits, bit depth and colour space. A method a newer ComfyUI adds is answered by
ComfyUI's own ``VideoFromFile`` on the video rendered (batch by batch) into ComfyUI's temp folder.
"""

from __future__ import annotations

import abc
import math
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import partial

import comfy.utils
import torch
from comfy_api.latest import Input, InputImpl, Types, io

from singer_core.errors import InputError
from singer_core.video_io import Encoding, VideoWriter, frame_rate

from .compat import expert
from .devices import check_interrupted

TILE_OVERLAP_FRACTION = 4  # overlap = tile / 4, ComfyUI's own default ratio

IMAGE_MEMORY = (
    "Every frame of the song at once, as float32: frames x height x width x 3 x 4 bytes (a 4-minute song at 25 fps "
    "and 512x512 is 6000 x 512 x 512 x 12 B, about 19 GB). To save a whole song use 'SINGER Decode to Video' "
    "instead, whose memory does not grow with the song."
)


def _latent_samples(latent: dict) -> torch.Tensor:
    samples = latent["samples"]
    if samples.dim() != 4:
        raise InputError(
            f"latent 'samples' must be [frames, channels, height, width] (got shape {list(samples.shape)}); "
            "connect the SINGER Sampler's latent."
        )
    return samples


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1 (got {batch_size}).")


def _source_inputs() -> list:
    """The VAE and the sampler's latents: the inputs both decode nodes start with."""
    return [
        io.Vae.Input("vae", tooltip="The same VAE as used for the reference (sd-vae-ft-mse)."),
        io.Latent.Input("latent", tooltip="Video latents from 'SINGER Sampler' (one entry per frame)."),
    ]


def _decode_inputs() -> list:
    """How the latents are decoded (batch, tiling): the same options on both decode nodes."""
    return [
        io.Int.Input("batch_size", default=8, min=1, max=256, **expert(io.Int.Input),
                     tooltip="Frames decoded at once; lower it if the GPU runs out of memory."),
        io.Boolean.Input("tiled", default=False, **expert(io.Boolean.Input),
                         tooltip="Decode each frame in overlapping tiles (for large frames on small GPUs)."),
        io.Int.Input("tile_size", default=512, min=128, max=4096, step=64, **expert(io.Int.Input),
                     tooltip="Tile edge in pixels when 'tiled' is on (tiles overlap by a quarter)."),
    ]


class SingerVideoDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerVideoDecode",
            display_name="SINGER Video Decode",
            category="SINGER/video",
            description="Decodes the sampler's latents [T, 4, H/8, W/8] into T frames, batch_size frames at a time "
            "so the GPU memory stays bounded for songs of any length; tiling bounds it for large frames too. "
            "The frames are all held in memory (see the output); 'SINGER Decode to Video' saves a song without that.",
            inputs=[
                *_source_inputs(),
                *_decode_inputs(),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip=IMAGE_MEMORY)],
        )

    @classmethod
    def execute(cls, vae, latent: dict, batch_size: int = 8, tiled: bool = False, tile_size: int = 512):
        samples = _latent_samples(latent)
        _check_batch_size(batch_size)
        return io.NodeOutput(torch.cat(list(_decoded_batches(vae, samples, batch_size, tiled, tile_size))))


class SingerDecodeVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerDecodeVideo",
            display_name="SINGER Decode to Video",
            category="SINGER/video",
            description="The sampler's latents and the song as a VIDEO for Save Video. Nothing is decoded here: when "
            "the video is saved, batch_size frames at a time are decoded and encoded straight into the file with the "
            "song, so memory does not grow with the song's length.",
            inputs=[
                *_source_inputs(),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0, step=1.0,
                               tooltip="Frame rate; connect the SINGER Sampler's fps output."),
                io.Audio.Input("audio", optional=True,
                               tooltip="The song (e.g. from Load Audio), muxed in and cut to the video's length."),
                *_decode_inputs(),
            ],
            outputs=[io.Video.Output(display_name="video", tooltip="Decoded and encoded batch by batch when saved, in "
                                     "any container/codec Save Video offers; trim, crop and resize stay lazy.")],
        )

    @classmethod
    def execute(cls, vae, latent: dict, fps: float = 25.0, audio: dict | None = None, batch_size: int = 8,
                tiled: bool = False, tile_size: int = 512):  # fmt: skip
        samples = _latent_samples(latent)
        _check_batch_size(batch_size)
        if samples.shape[0] < 1:
            raise InputError("The latent holds no frame; connect the SINGER Sampler's latent.")
        song = None if audio is None else _one_song(audio)
        scale = int(vae.spacial_compression_decode())
        source = FrameSource(
            batches=partial(_latent_batches, vae, samples, batch_size, tiled, tile_size),
            frame_count=int(samples.shape[0]),
            output_size=(int(samples.shape[-1]) * scale, int(samples.shape[-2]) * scale),
            rate=frame_rate(float(fps)),
            song=song,
        )
        return io.NodeOutput(LatentVideo(source))


def _one_song(audio: dict) -> tuple[torch.Tensor, int]:
    """``[channels, samples]`` and the rate of an AUDIO input holding one song."""
    waveform = audio["waveform"]
    if waveform.dim() == 3:
        if waveform.shape[0] != 1:
            raise InputError(f"The audio input holds {waveform.shape[0]} songs; connect one song.")
        waveform = waveform[0]
    if waveform.dim() != 2:
        raise InputError(f"The audio waveform must be [1, channels, samples] (got {list(audio['waveform'].shape)}).")
    return waveform, int(audio["sample_rate"])


FrameBatches = Callable[[int, int], Iterator[torch.Tensor]]
FrameTransform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FrameSource:
    """The one source of a :class:`LatentVideo`'s frames, for every way out (save, components, edits).

    ``batches(start, stop)`` yields frames ``[start, stop)`` of the song as ``[n, H, W, 3]`` float batches in
    [0, 1] on the CPU, a bounded number at a time (the decode node: ``batch_size`` latents through the VAE, with
    a progress bar and Cancel between batches). ``frame_transform``, when set, maps each such batch to the
    frames the video shows (e.g. pasting the generated window back into the full photo), and
    ``output_size`` (width, height) is the size of what comes out of it; without a transform, the size of what
    ``batches`` yields. ``song`` is ``([channels, samples], rate)`` for the whole song.
    """

    batches: FrameBatches
    frame_count: int
    output_size: tuple[int, int]
    rate: Fraction
    song: tuple[torch.Tensor, int] | None = None
    frame_transform: FrameTransform | None = None


@dataclass(frozen=True)
class Edits:
    """Trim, crop and resize kept as a recipe, applied to each batch as it is decoded (nothing is held).

    ``start``/``stop``: the kept frames of the source. ``spatial``: ComfyUI 0.38's spatial operations in order,
    ``("scale", width, height, upscale_method, crop)`` (one ``comfy.utils.common_upscale``, batch independent)
    and ``("crop", x, y, width, height)`` (an exact slice; ``as_cropped`` resolves its even-aligned rectangle
    against the frame size first, as ``normalize_crop_rect`` does).
    """

    start: int = 0
    stop: int | None = None
    spatial: tuple[tuple, ...] = ()


def _delegated(name: str):
    """A method this pack does not know (one a newer ComfyUI made abstract), answered by ComfyUI itself."""

    def method(self, *args, **kwargs):
        return getattr(self.as_file(), name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"ComfyUI's own ``VideoFromFile.{name}`` on this video rendered to a file."
    return method


def _complete_interface(cls):
    """Fill every abstract method of the host's ``VideoInput`` that the class lacks with ComfyUI's own
    ``VideoFromFile`` one (so a newer interface never makes the class impossible to create)."""
    for name in getattr(cls, "__abstractmethods__", ()):
        setattr(cls, name, _delegated(name))
    abc.update_abstractmethods(cls)
    return cls


@_complete_interface
class LatentVideo(Input.Video):
    """A song's video that exists as latents (a :class:`FrameSource`) until it is saved.

    ``save_to`` decodes a batch at a time and encodes it straight into the file (mp4/mkv/webm, H.264/AV1,
    with the song cut to the video), so only one batch of frames is ever in memory. Trim, crop and resize
    return another ``LatentVideo`` with the edit added to its :class:`Edits` (nothing decoded). The cheap
    queries (size, frame count, rate, duration, bit depth, colour space) need no decoding. ``get_components``
    decodes every frame at once: that is what an IMAGE is.
    """

    BIT_DEPTH = 8  # what save_to encodes unless asked otherwise
    COLOR_SPACE = "sRGB"  # the VAE's frames are sRGB

    def __init__(self, source: FrameSource, edits: Edits = Edits()) -> None:  # noqa: B008 (frozen, shared)
        self.source, self.edits = source, edits
        self._rendered: str | None = None

    # -- frames

    @property
    def window(self) -> tuple[int, int]:
        """The source frames this video shows, ``[start, stop)``."""
        stop = self.source.frame_count if self.edits.stop is None else self.edits.stop
        return self.edits.start, stop

    def frames(self) -> Iterator[torch.Tensor]:
        """The video's ``[n, H, W, 3]`` float32 batches in order (CPU), edits applied batch by batch."""
        expected = self.source.output_size
        for batch in self.source.batches(*self.window):
            if self.source.frame_transform is not None:
                batch = self.source.frame_transform(batch)
            if (batch.shape[2], batch.shape[1]) != expected:
                raise InputError(f"The video's frames are {batch.shape[2]}x{batch.shape[1]}, not the "
                                 f"{expected[0]}x{expected[1]} its source declares.")  # fmt: skip
            yield _apply_spatial(batch, self.edits.spatial)

    def _song_window(self) -> tuple[torch.Tensor, int] | None:
        """The song from this video's first frame on, ``([channels, samples], rate)`` (cut to the video when
        encoded or taken as components)."""
        if self.source.song is None:
            return None
        waveform, sample_rate = self.source.song
        first = round(Fraction(self.window[0]) / self.source.rate * sample_rate)
        return waveform[:, first:], sample_rate

    # -- the cheap queries

    def get_frame_count(self) -> int:
        start, stop = self.window
        return stop - start

    def get_frame_rate(self) -> Fraction:
        return self.source.rate

    def get_duration(self) -> float:
        return float(self.get_frame_count() / self.source.rate)

    def get_dimensions(self) -> tuple[int, int]:
        return _spatial_size(self.source.output_size, self.edits.spatial)

    def get_display_dimensions(self) -> tuple[int, int]:
        return self.get_dimensions()

    def get_container_format(self) -> str:
        return "mp4"

    def get_bit_depth(self) -> int:
        return self.BIT_DEPTH

    def get_color_space(self) -> str:
        return self.COLOR_SPACE

    def get_active_trim_window(self) -> tuple[float, float]:
        """No trim relative to :meth:`get_stream_source`: the rendered file holds the edits."""
        return 0.0, 0.0

    def has_pending_frame_edits(self) -> bool:
        """False: :meth:`get_stream_source` renders the edited video."""
        return False

    # -- materialising

    def get_components(self) -> Types.VideoComponents:
        """Every frame decoded at once, as IMAGE (``frames x H x W x 3 x 4`` bytes: this materialises the whole
        video, unlike ``save_to``), with the song cut to the video as AUDIO."""
        images = torch.cat(list(self.frames()))
        audio = None
        song = self._song_window()
        if song is not None:
            waveform, sample_rate = song
            samples = math.ceil(sample_rate / self.source.rate * self.get_frame_count())
            audio = {"waveform": waveform[None, :, :samples], "sample_rate": sample_rate}
        return Types.VideoComponents(images=images, audio=audio, frame_rate=self.source.rate)

    def save_to(self, path, format=Types.VideoContainer.AUTO, codec=Types.VideoCodec.AUTO, metadata=None,
                bit_depth=None, crf=None, color_space=None, preset=None, **newer):  # fmt: skip
        """Decode and encode batch by batch into ``path`` (a file path or a writable binary file).

        Takes every keyword of ComfyUI 0.38.1's ``VideoInput.save_to``; a keyword a newer ComfyUI adds is
        handed, with the rest, to ComfyUI's own ``VideoFromFile`` of this video rendered to a file."""
        if newer:
            return self.as_file().save_to(path, format=format, codec=codec, metadata=metadata, bit_depth=bit_depth,
                                          crf=crf, color_space=color_space, preset=preset, **newer)  # fmt: skip
        encoding = _encoding(path, format, codec, bit_depth, crf, color_space, preset)
        waveform, sample_rate = self._song_window() or (None, None)
        width, height = self.get_dimensions()
        even = (width - width % 2, height - height % 2)  # 4:2:0 needs even sizes: trimmed at the encoder
        with VideoWriter(path, self.source.rate, waveform, sample_rate, metadata=metadata,
                         encoding=encoding) as writer:  # fmt: skip
            for batch in self.frames():
                writer.write(batch[:, : even[1], : even[0]])

    def get_stream_source(self) -> str:
        """This video rendered once (batch by batch, H.264 CRF 18 mp4) into ComfyUI's temp folder."""
        if self._rendered is None or not os.path.isfile(self._rendered):
            import folder_paths

            path = os.path.join(folder_paths.get_temp_directory(), f"singer_video_{uuid.uuid4().hex}.mp4")
            self.save_to(path)
            self._rendered = path
        return self._rendered

    def as_file(self):
        """ComfyUI's own ``VideoFromFile`` of this video rendered to a file (see :meth:`get_stream_source`)."""
        return InputImpl.VideoFromFile(self.get_stream_source())

    def __getattr__(self, name: str):
        """Attributes only ComfyUI's ``VideoFromFile`` has (e.g. the ``_save_transcoded`` some ComfyUI versions
        call on every video they concatenate) come from it, on this video rendered to a file."""
        if name.startswith("__") or name in ("source", "edits", "_rendered"):
            raise AttributeError(name)
        if not hasattr(InputImpl.VideoFromFile, name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.as_file(), name)

    # -- edits (lazy: a new video with one more edit)

    def _edited(self, **changes) -> LatentVideo:
        return LatentVideo(self.source, replace(self.edits, **changes))

    def as_trimmed(self, start_time: float | None = None, duration: float | None = None,
                   strict_duration: bool = False) -> LatentVideo | None:  # fmt: skip
        """Frames shown at ``start_time <= t < start_time + duration`` (seconds; a negative start counts from the
        end, duration 0 or None: to the end), as ComfyUI's ``VideoFromFile`` keeps them. None when nothing is
        left, or when ``strict_duration`` and less than ``duration`` is."""
        rate, count = self.source.rate, self.get_frame_count()
        start = Fraction(start_time or 0).limit_denominator(1_000_000)
        if start < 0:
            start = max(count / rate + start, Fraction(0))
        length = Fraction(duration or 0).limit_denominator(1_000_000)
        if length < 0:
            return None
        first = min(math.ceil(start * rate), count)
        last = count if not length else min(math.ceil((start + length) * rate), count)
        if last <= first:
            return None
        if strict_duration and length and Fraction(last - first) / rate < length:
            return None
        offset = self.window[0]
        return self._edited(start=offset + first, stop=offset + last)

    def as_cropped(self, x: int = 0, y: int = 0, width: int = 0, height: int = 0) -> LatentVideo:
        """The pixel rectangle, clamped to the frame and even-aligned (ComfyUI's ``normalize_crop_rect``); an empty
        or full-frame rectangle returns this video."""
        rect = normalize_crop_rect(x, y, width, height, *self.get_dimensions())
        if rect is None:
            return self
        return self._edited(spatial=(*self.edits.spatial, ("crop", *rect)))

    def as_resized(self, width: int, height: int, upscale_method: str, crop: str = "disabled",
                   post_crop: tuple[int, int, int, int] | None = None) -> LatentVideo:  # fmt: skip
        """Scaled to ``width x height`` with ``comfy.utils.common_upscale`` (the Resize Image/Mask node's
        methods and crop), then ``post_crop`` as an exact rectangle; applied batch by batch when decoded."""
        ops = [("scale", int(width), int(height), upscale_method, crop)]
        if post_crop is not None:
            ops.append(("crop", *(int(value) for value in post_crop)))
        return self._edited(spatial=(*self.edits.spatial, *ops))


def _value(choice) -> str:
    """A ComfyUI container/codec choice as its name (an enum member or the plain string some nodes pass)."""
    return str(getattr(choice, "value", choice)).lower()


def _encoding(path, format, codec, bit_depth, crf, color_space, preset) -> Encoding:
    """ComfyUI's ``save_to`` arguments as an :class:`Encoding`; ``auto`` resolves as ComfyUI 0.38 does (the
    file's extension picks mkv/webm, else mp4; AV1 for webm, else H.264)."""
    container = _value(format)
    if container == "auto":
        extension = os.path.splitext(os.fspath(path))[1].lower() if isinstance(path, str | os.PathLike) else ""
        container = {".mkv": "mkv", ".webm": "webm"}.get(extension, "mp4")
    video_codec = _value(codec)
    if video_codec == "auto":
        video_codec = "av1" if container == "webm" else "h264"
    space = None if color_space in (None, "auto") else color_space
    depth = LatentVideo.BIT_DEPTH if bit_depth is None else int(bit_depth)
    return Encoding(container, video_codec, None if crf is None else float(crf), preset, depth, space)


def normalize_crop_rect(x: int, y: int, width: int, height: int, source_width: int,
                        source_height: int) -> tuple[int, int, int, int] | None:  # fmt: skip
    """ComfyUI 0.38.1's crop rule (``comfy_api/latest/_util/video_types.py``, df636417): clamp to the frame,
    even-align origin and size; None for an empty or full-frame rectangle. Written here because 0.3.75 and
    0.28.2 have no such function."""
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        return None
    x = max(0, min(int(x), source_width - 1))
    y = max(0, min(int(y), source_height - 1))
    x, y = x - x % 2, y - y % 2
    width, height = min(width, source_width - x), min(height, source_height - y)
    if (x, y, width, height) == (0, 0, source_width, source_height):
        return None
    width, height = width - width % 2, height - height % 2
    if width <= 0 or height <= 0:
        return None
    return x, y, width, height


def _spatial_size(size: tuple[int, int], ops: tuple[tuple, ...]) -> tuple[int, int]:
    for op in ops:
        size = (op[1], op[2]) if op[0] == "scale" else (op[3], op[4])
    return size


def _apply_spatial(batch: torch.Tensor, ops: tuple[tuple, ...]) -> torch.Tensor:
    """``[n, H, W, 3]`` through the edits' spatial operations (``common_upscale`` is batch independent, so a
    batch at a time gives the frames the whole video would)."""
    if not ops:
        return batch
    work = batch.movedim(-1, 1)
    for op in ops:
        if op[0] == "scale":
            work = comfy.utils.common_upscale(work, op[1], op[2], op[3], op[4])
        else:
            _, x, y, width, height = op
            work = work[..., y : y + height, x : x + width]
    return work.movedim(1, -1).contiguous()


def _latent_batches(vae, samples: torch.Tensor, batch_size: int, tiled: bool, tile_size: int, start: int,
                    stop: int) -> Iterator[torch.Tensor]:  # fmt: skip
    """The decode node's :attr:`FrameSource.batches`: frames ``[start, stop)`` of the latents through the VAE."""
    return _decoded_batches(vae, samples[start:stop], batch_size, tiled, tile_size)


def _decoded_batches(vae, samples: torch.Tensor, batch_size: int, tiled: bool, tile_size: int):
    batches = samples.split(batch_size)
    bar = comfy.utils.ProgressBar(len(batches))
    for batch in batches:
        check_interrupted()
        yield _decode(vae, batch, tiled, tile_size).float().cpu()
        bar.update(1)


def _decode(vae, latents: torch.Tensor, tiled: bool, tile_size: int) -> torch.Tensor:
    if not tiled:
        return vae.decode(latents)
    tile = max(8, tile_size // vae.spacial_compression_decode())
    return vae.decode_tiled(latents, tile_x=tile, tile_y=tile, overlap=tile // TILE_OVERLAP_FRACTION)
