"""Everything the command line needs between "paths on disk" and ``generate``: loading the models,
preparing the reference and the audio, freeing what is no longer needed between stages."""

from __future__ import annotations

import ctypes
import gc
import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from singer_core.errors import InputError, RenderSpaceError
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


# -- resumable renders (singer_core.pipeline.resume) -------------------------------------------------------------

RESUME_SUFFIX = ".singer-resume"


def resume_folder(out: str | Path) -> Path:
    """Where the render of ``out`` is kept while it is unfinished: ``out.mp4.singer-resume/`` next to it."""
    out = Path(out)
    return out.with_name(out.name + RESUME_SUFFIX)


def render_identity(files: ModelFiles, image: np.ndarray, audio_path: str | Path, args) -> dict[str, str]:
    """What the command line's result depends on beyond the options and the prepared inputs (which
    ``resume.render_key`` digests): the model files, the photo's pixels, the song file (muxed as it is) and
    the preprocessing and decoding options. ``args``: the ``generate`` namespace."""
    from singer_core.pipeline.resume import file_digest, file_identity

    identity = {f"model {name}": file_identity(getattr(files, name))
                for name in ("checkpoint", "vae", "wav2vec", "insightface") }  # fmt: skip
    identity["model separator"] = "none" if files.separator is None else file_identity(files.separator)
    identity["image"] = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest() + f" {image.shape}"
    identity["audio file"] = file_digest(audio_path)
    for name in ("face_expand_ratio", "framing", "decode_batch", "vae_tiling", "no_vocal_separation"):
        identity[name] = str(getattr(args, name))
    return identity


def open_render(out: str | Path, files: ModelFiles, image: np.ndarray, audio_path: str | Path, args, reference,
                audio, options: GenerationOptions, device, on_change: str = "refuse"):  # fmt: skip
    """The :class:`~singer_core.pipeline.resume.RenderState` of ``out`` (command line and batch rows)."""
    from singer_core.pipeline.resume import RenderState, render_key

    key = render_key(reference, audio, options, "frames", device,
                     render_identity(files, image, audio_path, args))  # fmt: skip
    state = RenderState(resume_folder(out), key, on_change=on_change, fresh=getattr(args, "fresh", False))
    state.open(len(plan_clips(audio.audio_length, options.clip_length, options.overlap)))
    check_render_space(state.folder, audio.audio_length, options.width, options.height)
    return state


RENDER_SPACE_MARGIN = 256 << 20  # the mp4 being written and the small state files, generously


def check_render_space(folder: Path, frames: int, width: int, height: int) -> None:
    """Refuse, before the net is loaded, a render whose kept frames (``width x height x 3`` bytes each, the whole
    song's at most) would not fit on ``folder``'s disk: better than failing hours in."""
    import shutil

    from singer_core.pipeline.resume import size_on_disk

    kept = size_on_disk(folder)
    needed = max(frames * width * height * 3 - kept, 0) + RENDER_SPACE_MARGIN
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise RenderSpaceError(
            f"Not enough disk space for the render state in {folder}: it keeps every finished frame until the video "
            f"is complete ({width}x{height}x3 bytes per frame, {frames} frames: {needed / 1e9:.2f} GB still needed, "
            f"{free / 1e9:.2f} GB free). Free some space, or write --out to another disk.")


def write_render(out: Path, song: Path, state, start_clips, name: str = "generating", log=print, paste=None):
    """Generate and write ``out`` through its render state (``session.open_render``): the clips it holds are
    handed out from disk, the rest generated and kept there clip by clip; the mp4 is written to a temporary file
    in the state folder and moved to ``out`` when complete, and the state removed then. ``start_clips(progress)``
    calls ``iter_clips`` with that progress callback. ``paste`` (``paste_back``'s compositor, or None) turns the
    model-window frames, which the state keeps, into the whole photo's on their way to the writer. Prints
    ``clip K/N`` with the elapsed time and an ETA; returns the writer (frames written) and the sha256 of the uint8
    frames it encoded."""
    import os

    from tqdm import tqdm

    from singer_core.pipeline.paste import paste_stream
    from singer_core.pipeline.progress import ClipClock
    from singer_core.video_io import VideoWriter, frames_to_uint8

    clock, digest = ClipClock(), hashlib.sha256()
    with tqdm(total=1.0, bar_format="{l_bar}{bar}| {postfix}", desc=name, disable=None) as bar:

        def on_progress(event) -> None:
            bar.n = round(event.fraction, 4)
            bar.set_postfix_str(text := clock.text(event))
            bar.refresh()
            if event.kind == "clip":  # a line per clip, also where the bar is off (logs, batch)
                tqdm.write(f"{name}: {text}")

        clips = start_clips(on_progress)
        for note in state.notes:
            log(f"{name}: {note}", flush=True)
        if clips.resumed:
            going_on = (f"resuming at clip {clips.resumed + 1}/{clips.clips}" if clips.resumed < clips.clips
                        else f"all {clips.clips} clips were done, writing the video")  # fmt: skip
            log(f"{name}: {going_on}: skipped {clips.resumed} clips already done (kept in {state.folder})", flush=True)
        temporary = state.folder / "video.mp4"  # Each clip is encoded as soon as it is final.
        with VideoWriter(temporary, clips.fps, song) as writer:
            for piece in paste_stream(clips, paste):
                writer.write(piece)
                digest.update(frames_to_uint8(piece).tobytes())
    os.replace(temporary, out)
    state.remove()
    log(f"wrote {out} ({writer.frames} frames, {writer.frames / clips.fps:.2f} s)", flush=True)
    return writer, digest.hexdigest()
