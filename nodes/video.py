"""Latents -> video with ComfyUI's VAE: all frames as an IMAGE batch, or a VIDEO decoded and encoded
clip by clip when it is saved (memory independent of the song's length)."""

from __future__ import annotations

import math
from fractions import Fraction

import comfy.utils
import torch
from comfy_api.latest import Input, Types, io

from singer_core.errors import InputError
from singer_core.pipeline.paste import DEFAULT_BAND
from singer_core.video_io import VideoWriter, frame_rate

from .devices import check_interrupted
from .paste import band_input, color_match_input, compositor
from .sockets import SingerReferenceSocket

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
        io.Int.Input("batch_size", default=8, min=1, max=256,
                     tooltip="Frames decoded at once; lower it if the GPU runs out of memory."),
        io.Boolean.Input("tiled", default=False,
                         tooltip="Decode each frame in overlapping tiles (for large frames on small GPUs)."),
        io.Int.Input("tile_size", default=512, min=128, max=4096, step=64,
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
                SingerReferenceSocket.Input(
                    "reference", optional=True,
                    tooltip="Connect the reference to get the whole photo: each batch is pasted back into it (at the "
                    "photo's size, even-rounded) while it is encoded. Memory: batch_size frames at the photo's size.",
                ),
                band_input("paste_band", optional=True),
                color_match_input("paste_color_match", optional=True),
            ],
            outputs=[io.Video.Output(display_name="video", tooltip="Decoded and encoded batch by batch when saved.")],
        )

    @classmethod
    def execute(cls, vae, latent: dict, fps: float = 25.0, audio: dict | None = None, batch_size: int = 8,
                tiled: bool = False, tile_size: int = 512, reference=None, paste_band: float = DEFAULT_BAND,
                paste_color_match: bool = False):  # fmt: skip
        samples = _latent_samples(latent)
        _check_batch_size(batch_size)
        if samples.shape[0] < 1:
            raise InputError("The latent holds no frame; connect the SINGER Sampler's latent.")
        song = None if audio is None else _one_song(audio)
        video = LatentVideo(vae, samples, frame_rate(float(fps)), song, batch_size, tiled, tile_size)
        if reference is not None:
            paste = compositor(reference, paste_band, paste_color_match)
            video.frame_transform, video.size = paste.composite, paste.size
        return io.NodeOutput(video)


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


class LatentVideo(Input.Video):
    """A song's video that exists as latents until it is saved.

    ``save_to`` decodes ``batch_size`` frames at a time with the VAE and encodes them straight into the
    mp4 (H.264, the song as AAC cut to the video), so only one batch of frames is ever in memory. The
    cheap queries (size, frame count, rate, duration) read the latents' shape.
    """

    def __init__(self, vae, samples: torch.Tensor, rate: Fraction, song: tuple[torch.Tensor, int] | None,
                 batch_size: int = 8, tiled: bool = False, tile_size: int = 512) -> None:  # fmt: skip
        self.vae, self.samples, self.rate, self.song = vae, samples, rate, song
        self.batch_size, self.tiled, self.tile_size = batch_size, tiled, tile_size
        # Applied to each decoded batch (e.g. the paste back into the photo); ``size`` is then its (width, height).
        self.frame_transform, self.size = None, None

    def frames(self):
        """Decoded ``[n, H, W, 3]`` float32 batches in order (CPU), checking for Cancel between batches."""
        batches = _decoded_batches(self.vae, self.samples, self.batch_size, self.tiled, self.tile_size)
        return batches if self.frame_transform is None else map(self.frame_transform, batches)

    def save_to(self, path, format=Types.VideoContainer.AUTO, codec=Types.VideoCodec.AUTO, metadata=None):
        """Decode and encode batch by batch into ``path`` (a file path or a writable binary file)."""
        if format not in (Types.VideoContainer.AUTO, Types.VideoContainer.MP4):
            raise InputError(f"SINGER videos are saved as mp4 (got format {format!r}); choose auto or mp4.")
        if codec not in (Types.VideoCodec.AUTO, Types.VideoCodec.H264):
            raise InputError(f"SINGER videos are encoded as H.264 (got codec {codec!r}); choose auto or h264.")
        waveform, sample_rate = self.song if self.song is not None else (None, None)
        with VideoWriter(path, self.rate, waveform, sample_rate, metadata=metadata) as writer:
            for batch in self.frames():
                writer.write(batch)

    def get_components(self) -> Types.VideoComponents:
        """Every frame decoded at once, as IMAGE (``frames x H x W x 3 x 4`` bytes: this materialises the whole
        video, unlike ``save_to``), with the song cut to the video as AUDIO."""
        images = torch.cat(list(self.frames()))
        audio = None
        if self.song is not None:
            waveform, sample_rate = self.song
            samples = math.ceil(sample_rate / self.rate * self.get_frame_count())
            audio = {"waveform": waveform[None, :, :samples], "sample_rate": sample_rate}
        return Types.VideoComponents(images=images, audio=audio, frame_rate=self.rate)

    def get_dimensions(self) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        scale = int(self.vae.spacial_compression_decode())
        return self.samples.shape[-1] * scale, self.samples.shape[-2] * scale

    def get_frame_count(self) -> int:
        return int(self.samples.shape[0])

    def get_frame_rate(self) -> Fraction:
        return self.rate

    def get_duration(self) -> float:
        return float(self.get_frame_count() / self.rate)

    def get_container_format(self) -> str:
        return "mp4"


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
