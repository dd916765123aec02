"""Conditioning nodes: the song -> per-frame audio tokens, the photo -> the prepared reference portrait."""

from __future__ import annotations

import contextlib

import torch
from comfy_api.latest import io

from singer_core.errors import InputError

from .devices import check_interrupted, working
from .payloads import AudioEncoder, FaceAnalyzer, SingerAudio, SingerReference, VocalSeparator
from .sockets import (
    AudioEncoderSocket,
    FaceAnalyzerSocket,
    SingerAudioSocket,
    SingerReferenceSocket,
    VocalSeparatorSocket,
)

FRAMINGS = ("face", "full")


def _one_song(audio: dict) -> tuple[torch.Tensor, int]:
    """The AUDIO input's waveform and rate, checked by the library (one song, not silent) as the CLI is."""
    from singer_core.audio.waveform import as_channels_first, require_audible, to_unit_range

    waveform, rate = audio["waveform"], int(audio["sample_rate"])
    require_audible(to_unit_range(as_channels_first(waveform)))
    return waveform, rate


class SingerAudioEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerAudioEncode",
            display_name="SINGER Audio Encode",
            category="SINGER/conditioning",
            description="Turns the song into per-frame wav2vec2 tokens at 25 fps (optionally from the separated "
            "vocals, as the official inference does). The multi-scale spectral module (MSM) is applied later, per "
            "clip, by the sampler, because it depends on each clip's initial noise.",
            inputs=[
                AudioEncoderSocket.Input("audio_encoder", tooltip="wav2vec2 from 'Load SINGER Audio Encoder'."),
                io.Audio.Input("audio", tooltip="The song (any sample rate, mono or stereo), e.g. from Load Audio."),
                io.Int.Input(
                    "clip_length",
                    default=16,
                    min=1,
                    max=128,
                    tooltip="Frames per generated clip (official 16). Set once, here: the song is padded to a "
                    "multiple of it before encoding (official) and the sampler generates clips of this length.",
                ),
                VocalSeparatorSocket.Input(
                    "separator",
                    optional=True,
                    tooltip="Optional vocal separator: encode the voice without the music (official default).",
                ),
            ],
            outputs=[SingerAudioSocket.Output(display_name="singer_audio")],
        )

    @classmethod
    def execute(
        cls, audio_encoder: AudioEncoder, audio: dict, clip_length: int = 16, separator: VocalSeparator | None = None
    ) -> io.NodeOutput:
        from singer_core.audio import song_features
        from singer_core.pipeline.memory import estimate_audio_encoder_memory

        waveform, rate = _one_song(audio)
        check_interrupted()
        model = audio_encoder.model
        memory = estimate_audio_encoder_memory(waveform.shape[-1] / rate, model.config.hidden_size,
                                               model.config.num_hidden_layers, model.config.num_attention_heads,
                                               model.dtype)
        with contextlib.ExitStack() as stack:
            stack.enter_context(working([audio_encoder.patcher], memory))
            vocals = stack.enter_context(separator.session()) if separator is not None else None
            features = song_features(waveform, rate, model, clip_length=clip_length, separator=vocals)
        return io.NodeOutput(SingerAudio(features, waveform.shape[-1] / rate, separator is not None))


class SingerReferenceEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerReferenceEncode",
            display_name="SINGER Reference Encode",
            category="SINGER/conditioning",
            description="Finds the face in the reference photo, frames and resizes the photo to the output size, "
            "and builds the identity embedding and the face/lip attention masks. Outputs the reference for the "
            "sampler and the framed photo as an image to check the crop.",
            inputs=[
                io.Image.Input("image", tooltip="The singer's photo (one image; the largest face is used)."),
                io.Vae.Input(
                    "vae",
                    tooltip="sd-vae-ft-mse from Load VAE. The sampler encodes the reference and the frames carried "
                    "between clips with it.",
                ),
                FaceAnalyzerSocket.Input("face_analyzer", tooltip="Face models from 'Load SINGER Face Analysis'."),
                io.Int.Input("width", default=512, min=64, max=2048, step=64,
                             tooltip="Video width in pixels (multiple of 64; SINGER was trained at 512)."),
                io.Int.Input("height", default=512, min=64, max=2048, step=64,
                             tooltip="Video height in pixels (multiple of 64; SINGER was trained at 512)."),
                io.Float.Input(
                    "face_expand_ratio",
                    default=1.2,
                    min=1.0,
                    max=3.0,
                    step=0.05,
                    tooltip="How far the face attention region reaches beyond the face box (official 1.2).",
                ),
                io.Combo.Input(
                    "framing",
                    options=list(FRAMINGS),
                    default="face",
                    tooltip="'face' cuts a window of the output's shape around the face before resizing (no "
                    "squashing); 'full' resizes the whole photo to width x height, as the official script does.",
                ),
                io.Int.Input("face_index", default=0, min=0, max=63,
                             tooltip="Which detected face to animate: 0 = the largest, 1 = the next, ..."),
                io.Mask.Input(
                    "face_mask",
                    optional=True,
                    tooltip="Optional: paint the face white to give its position yourself (skips the detector, "
                    "e.g. for stylised faces it cannot find). Same size as the image.",
                ),
            ],
            outputs=[
                SingerReferenceSocket.Output(display_name="reference"),
                io.Image.Output(display_name="framed_image"),
                io.Image.Output(display_name="placement", tooltip="The whole photo with the window outlined and "
                                "dimmed outside it: where the video sits when pasted back (fading in over the "
                                "default band)."),
            ],
        )

    @classmethod
    def execute(
        cls,
        image: torch.Tensor,
        vae,
        face_analyzer: FaceAnalyzer,
        width: int = 512,
        height: int = 512,
        face_expand_ratio: float = 1.2,
        framing: str = "face",
        face_index: int = 0,
        face_mask: torch.Tensor | None = None,
    ) -> io.NodeOutput:
        from singer_core.face import prepare_reference

        if framing not in FRAMINGS:
            raise InputError(f"framing '{framing}' is not one of {', '.join(FRAMINGS)}; pick one of those.")
        if image.dim() == 4 and image.shape[0] != 1:
            raise InputError(f"The image input holds {image.shape[0]} images; connect one photo.")
        with face_analyzer.session() as models:
            face = prepare_reference(
                image,
                models,
                width,
                height,
                face_expand_ratio=face_expand_ratio,
                face_index=face_index,
                face_mask=face_mask,
                framing=framing,
            )
        from singer_core.pipeline.paste import Placement, placement_preview

        framed = ((face.pixels.float() + 1.0) / 2.0).clamp(0, 1).permute(1, 2, 0)[None].contiguous()
        photo = image[0] if image.dim() == 4 else image
        placement = Placement.of(face.crop_box, width, height, photo.shape[1], photo.shape[0])
        return io.NodeOutput(SingerReference(face=face, vae=vae, photo=photo), framed,
                             placement_preview(photo, placement))
