"""Everything the command line needs between "paths on disk" and ``generate``: loading the models,
preparing the reference and the audio, freeing what is no longer needed between stages."""

from __future__ import annotations

import ctypes
import gc
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from singer_core.errors import InputError
from singer_core.pipeline.clips import plan_clips
from singer_core.pipeline.codec import DiffusersVAECodec
from singer_core.pipeline.model_files import ModelFiles
from singer_core.pipeline.options import GenerationOptions
from singer_core.pipeline.vae_loading import load_vae


def read_image(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB of an image file, with a clear error for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Reference image not found: {path}.")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"Cannot read the reference image {path}: {error}. Use a PNG or JPEG file.") from error


def read_song(path: str | Path, keep_channels: bool = False) -> tuple[torch.Tensor, int]:
    """The song for the audio stage; decoding errors name the file.

    By default the 16 kHz mono waveform wav2vec2 reads (``load_waveform``: decoded, downmixed and resampled
    frame by frame, the same bits as ``librosa.load(sr=16000)``), so a long song is never held whole at its
    native rate and channel count; the writer muxes the song from its file (``VideoWriter(audio=path)``).
    ``keep_channels`` returns it as decoded (all channels, original rate): the vocal separator needs the mix.
    """
    from singer_core.audio.waveform import WAV2VEC_SAMPLE_RATE, load_waveform, read_audio_file

    song = read_audio_file(path) if keep_channels else (load_waveform(path), WAV2VEC_SAMPLE_RATE)
    release("cpu")  # the decoder's frame-sized buffers, so the heap does not keep a song's worth of them
    return song


def separates(files: ModelFiles, separate: bool) -> bool:
    """Whether the vocal stem is encoded: the separator model is present and separation is not turned off."""
    return separate and files.separator is not None


def prepare_reference(
    files: ModelFiles, image: np.ndarray, options: GenerationOptions, face_expand_ratio: float = 1.2, framing="face"
):
    """Face analysis on the photo (insightface), released right after. ``framing='full'`` resizes the
    whole photo as the official script does; ``'face'`` crops around the face first."""
    from singer_core.face import FaceModels
    from singer_core.face import prepare_reference as face_reference

    models = FaceModels.load(files.insightface)
    try:
        return face_reference(
            image, models, options.width, options.height, face_expand_ratio=face_expand_ratio, framing=framing
        )
    finally:
        del models
        release("cpu")


def prepare_audio(
    files: ModelFiles, song: torch.Tensor, rate: int, options: GenerationOptions, device, separate: bool = True
):
    """wav2vec2 features of the song (official padding to the clip length); the vocal stem is encoded
    when the separator model is present and ``separate`` (the official default). Models released after."""
    from singer_core.audio import MdxSeparator, load_wav2vec, song_features

    separator = MdxSeparator(files.separator) if separates(files, separate) else None
    model = load_wav2vec(files.wav2vec, device=device)
    try:
        return song_features(song, rate, model, options.clip_length, options.fps, separator=separator)
    finally:
        del model, separator
        release(device)


def load_net(files: ModelFiles, options: GenerationOptions, device):
    from singer_core.checkpoint import load_net as load_checkpoint

    return load_checkpoint(files.checkpoint, dtype=options.torch_dtype, device=device)


def load_codec(files: ModelFiles, options: GenerationOptions, device, decode_batch: int, tiling: bool):
    vae = load_vae(files.vae, device=device, dtype=options.torch_dtype)
    return DiffusersVAECodec(vae, batch_size=decode_batch, tiling=tiling)


def release(device) -> None:
    """Free what a finished stage left behind. On glibc, ``malloc_trim`` also returns the freed heap to
    the system: the audio stage's transient buffers grow with the song (wav2vec2 runs over all of it),
    and glibc keeps part of it (measured: ~20 MB after a 30 s song with the tiny test models; trimmed,
    the command line's 30 s peak went from 683.0 to 679.2 MB, ``bench_pipeline.py --song-memory``)."""
    gc.collect()
    _trim_heap()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def _trim_heap() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        pass


def paste_back(image: np.ndarray, reference, full_frame: bool, band: float, color_match: bool):
    """``--full-frame``'s compositor for the photo the reference was made from (None without it): the generated
    frames go through ``paste.paste_stream`` on their way to the writer, a pure post-process of the frames."""
    from singer_core.pipeline.paste import PasteBack

    return PasteBack.for_reference(image, reference, band, color_match) if full_frame else None


def dry_run(files: ModelFiles, image: np.ndarray, song: torch.Tensor, rate: int, options: GenerationOptions,
            framing: str = "face") -> list[str]:  # fmt: skip
    """Validate the models (checkpoint keys, VAE, wav2vec2, face models + a face in the photo) and the
    inputs without generating; returns what was checked, one line each."""
    from singer_core.audio import MdxSeparator, load_wav2vec
    from singer_core.audio.features import frame_count
    from singer_core.checkpoint import empty_net, read_checkpoint, verify_keys

    checkpoint = read_checkpoint(files.checkpoint)
    verify_keys(checkpoint, empty_net(checkpoint.config))
    kind = checkpoint.kind
    del checkpoint
    vae = load_vae(files.vae)
    del vae
    wav2vec = load_wav2vec(files.wav2vec)
    del wav2vec
    if files.separator is not None:
        MdxSeparator(files.separator)  # opens the ONNX model: raises CheckpointError if unreadable
    reference = prepare_reference(files, image, options, framing=framing)
    frames = frame_count(song.shape[-1], rate, options.fps)
    clips = len(plan_clips(frames, options.clip_length, options.overlap))
    return [
        f"checkpoint: {files.checkpoint} ({kind}, keys verified)",
        f"vae: {files.vae}",
        f"wav2vec2: {files.wav2vec}",
        f"face models: {files.insightface} (face found, {reference.num_faces} detected)",
        f"vocal separator: {files.separator or 'none (the mix is encoded directly)'}",
        f"audio: {song.shape[-1] / rate:.2f} s at {rate} Hz -> {frames} frames, {clips} clips of {options.clip_length}",
        f"output: {options.width}x{options.height} at {options.fps} fps, {options.steps} {options.scheduler} steps",
    ]
