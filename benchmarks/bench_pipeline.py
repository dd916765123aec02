"""Stage-by-stage timing and peak memory of one generation clip on the full-size architecture.

Random weights (no download): the SINGER net built from ``NetConfig.singer()``, an sd-vae-ft-mse
shaped VAE and a wav2vec2-base shaped audio encoder. Stages: ``audio`` (wav2vec2 features for the
clip's duration + audio projection), ``face`` (image tokens, face-locator features, masks; the
insightface ONNX detection is not included: its weights cannot be generated), ``encode`` (VAE
encode of reference + motion frames), ``reference`` (reference-UNet write pass of the first clip),
``reference_next_clip`` (the pass of a later clip: new motion frames, reference rows carried over
from the first clip), ``step`` (one
denoising step: CFG pair through the denoising UNet + scheduler), ``decode`` (VAE decode of the
clip). One JSON object per line on stdout; the last line (``stage: "total"``) holds the seconds
per generated frame of a full run with ``--steps`` steps.

    python benchmarks/bench_pipeline.py --device cpu --resolution 256 --frames 4 --steps 2
    python benchmarks/bench_pipeline.py --device cuda --resolution 512 --frames 16 --steps 40 --dtype fp16

``--song-memory 30,120``: peak memory of whole songs instead. The command line (``python -m
singer_core generate``) runs once per song length in its own process, on the test suite's tiny models
(written to a temporary models folder) at ``--resolution`` (64 is enough: the point is what grows
with the song), 1 step, with the example song repeated to each length. One JSON line per song (the
child's peak RSS from ``wait4``), then one with the growth per minute of song (``mb_per_minute``).
``--source DIR`` runs the command line of another checkout (e.g. an older commit) for comparison.

    python benchmarks/bench_pipeline.py --song-memory 30,120 --resolution 64

``--full-frame 1080x1920`` (with ``--song-memory``): the same, for ``generate --full-frame`` on a picture of that
size (a textured background with the example face where the tiny detector reports one), each song also run without
``--full-frame`` on the same picture: ``added_s_per_frame`` is the difference of the two runs' wall times per frame
(compositing plus encoding the larger frames). ``--paste-timing 1080x1920``: the compositing alone, in process:
seconds per frame of ``PasteBack.composite`` (512x512 window) and of writing full-size vs window-size frames.

    python benchmarks/bench_pipeline.py --song-memory 60 --full-frame 1080x1920 --resolution 64
    python benchmarks/bench_pipeline.py --paste-timing 1080x1920
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from diffusers.utils import logging as diffusers_logging

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.random_weights import randomize  # noqa: E402
from singer_core.audio.features import extract_audio_features  # noqa: E402
from singer_core.audio.wav2vec import build_wav2vec  # noqa: E402
from singer_core.config import NetConfig  # noqa: E402
from singer_core.models.conditions import DenoiseConditions  # noqa: E402
from singer_core.models.reference_rows import RowMemo  # noqa: E402
from singer_core.net import SingerNet  # noqa: E402
from singer_core.pipeline.codec import DiffusersVAECodec  # noqa: E402
from singer_core.pipeline.conditions import build_conditions, project_audio  # noqa: E402
from singer_core.pipeline.inputs import MASK_LEVEL_STRIDES, ReferenceInputs  # noqa: E402
from singer_core.pipeline.options import DTYPES  # noqa: E402
from singer_core.pipeline.schedulers import make_scheduler  # noqa: E402
from singer_core.pipeline.vae_loading import SD_VAE_CONFIG  # noqa: E402
from singer_core.sampling import guide, predict_noise  # noqa: E402

diffusers_logging.set_verbosity_error()


REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def architectures(tiny: bool) -> tuple[NetConfig, dict, dict]:
    """(net config, wav2vec2 config dict, VAE config): full size, or the test fixtures' tiny ones."""
    if not tiny:
        return NetConfig.singer(), {}, SD_VAE_CONFIG
    wav2vec = json.loads((FIXTURES / "wav2vec_tiny.json").read_text())["config"]
    vae = json.loads((FIXTURES / "vae_tiny.json").read_text())["constructor_kwargs"]
    return NetConfig.from_file(FIXTURES / "net_tiny.json"), wav2vec, vae


def build_net(config: NetConfig, device, dtype) -> SingerNet:
    from singer_core.checkpoint import parameters_on_meta

    with parameters_on_meta():
        net = SingerNet(config)
    return randomize(net, device, dtype)


class Meter:
    """Times stages and records peak memory (CUDA allocator peak, or the process's peak RSS on CPU)."""

    def __init__(self, device: torch.device, common: dict) -> None:
        self.device, self.common, self.rows = device, common, []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def stage(self, name: str, calls: int = 1):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        seconds = time.perf_counter() - start
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row = {"stage": name, "seconds": round(seconds, 3), "calls": calls,
               "seconds_per_call": round(seconds / calls, 3), "peak_mb": round(peak), **self.common}  # fmt: skip
        self.rows.append(row)
        print(json.dumps(row), flush=True)


def synthetic_reference(size: int) -> ReferenceInputs:
    gen = torch.Generator("cpu").manual_seed(1)
    region = torch.zeros(3, size, size)
    region[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1

    def masks(fill: float):
        return [torch.full(((size // s) ** 2,), fill) for s in MASK_LEVEL_STRIDES]

    return ReferenceInputs(
        pixels=torch.rand(3, size, size, generator=gen) * 2 - 1,
        face_embedding=torch.randn(512, generator=gen),
        face_region=region,
        full_mask=masks(1.0),
        face_mask=masks(0.5),
        lip_mask=masks(0.2),
    )


def run(args) -> list[dict]:
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    common = {"device": args.device, "dtype": args.dtype, "resolution": args.resolution, "frames": args.frames,
              "steps": args.steps, "threads": args.threads,
              "architecture": "tiny" if args.tiny else "singer"}  # fmt: skip
    meter = Meter(device, common)
    size, frames, n_motion = args.resolution, args.frames, args.motion_frames
    with torch.no_grad():
        from diffusers import AutoencoderKL
        from transformers import Wav2Vec2Config

        net_config, wav2vec_config, vae_config = architectures(args.tiny)
        wav2vec = randomize(build_wav2vec(Wav2Vec2Config(**wav2vec_config)), device, torch.float32)
        net = build_net(net_config, device, dtype)
        vae = randomize(AutoencoderKL(**vae_config), device, dtype)
        codec = DiffusersVAECodec(vae, batch_size=args.decode_batch)
        song = torch.randn(int(frames / 25 * 16000), generator=torch.Generator("cpu").manual_seed(2)) * 0.1

        with meter.stage("audio"):
            features = extract_audio_features(song, wav2vec, clip_length=frames)
            tokens = project_audio(net, features.windows[:frames], device, dtype, chunk=frames)
        del wav2vec
        reference = synthetic_reference(size)
        with meter.stage("face"):
            conditions = build_conditions(net, reference, frames, device, dtype)
        with meter.stage("encode"):
            ref_latents = codec.encode(torch.cat([reference.pixels[None]] * (1 + n_motion))).to(device, dtype)
        noise = torch.randn(1, 4, frames, size // 8, size // 8, generator=torch.Generator("cpu").manual_seed(3))
        noise = noise.to(device, dtype)
        audio = net.audioembed(tokens[None], noise)
        tok, memo = conditions.image_tokens, RowMemo()
        with meter.stage("reference"):
            bank = net.reference_unet.write_bank(ref_latents, tok[:1], tok[1:], memo)
        motion = torch.rand(n_motion, 3, size, size, generator=torch.Generator("cpu").manual_seed(4)) * 2 - 1
        next_latents = codec.encode(torch.cat([reference.pixels[None], motion])).to(device, dtype)
        with meter.stage("reference_next_clip"):
            net.reference_unet.write_bank(next_latents, tok[:1], tok[1:], memo)
        cond = DenoiseConditions(bank, tok, torch.cat([torch.zeros_like(audio), audio]), conditions.face_features,
                                 conditions.masks, (1.0, 1.0, 1.0))  # fmt: skip
        scheduler = make_scheduler(args.scheduler)
        scheduler.set_timesteps(args.steps, device=device)
        latents = noise * scheduler.init_noise_sigma
        with meter.stage("step", calls=args.steps):
            for t in scheduler.timesteps:
                guided = guide(predict_noise(net, scheduler.scale_model_input(latents, t), t, cond), 3.5)
                latents = scheduler.step(guided, t, latents, return_dict=False)[0]
        del bank, cond
        with meter.stage("decode", calls=frames):
            codec.decode(latents[0].transpose(0, 1))
    by_stage = {row["stage"]: row["seconds"] for row in meter.rows if row["stage"] != "reference_next_clip"}
    total = {"stage": "total", "seconds": round(sum(by_stage.values()), 3), **common,
             "seconds_per_frame": round(sum(by_stage.values()) / frames, 3),
             "seconds_per_frame_excluding_audio_face": round(
                 sum(v for k, v in by_stage.items() if k not in ("audio", "face")) / frames, 3)}  # fmt: skip
    if device.type == "cuda":
        total["peak_mb"] = round(max(row["peak_mb"] for row in meter.rows))
    else:
        total["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(total), flush=True)
    return [*meter.rows, total]


def _write_wav(path: Path, rate: int, chunks) -> Path:
    """A 16-bit wav from ``[channels, n]`` int16 chunks (mono or stereo), written as they come."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = None
        for pcm in chunks:
            layout = "mono" if pcm.shape[0] == 1 else "stereo"
            stream = stream or container.add_stream("pcm_s16le", rate=rate, layout=layout)
            frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16", layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_song(path: Path, seconds: float) -> Path:
    """The example song (tests/data/0001.wav, 2 s of singing) repeated to ``seconds``, as a 16-bit wav."""
    from singer_core.audio.waveform import read_audio_file

    waveform, rate = read_audio_file(REPO / "tests" / "data" / "0001.wav")
    samples = int(seconds * rate)
    song = waveform.repeat(1, samples // waveform.shape[1] + 1)[:, :samples]
    return _write_wav(path, rate, [(song.clamp(-1, 1) * 32767).round().short().numpy()])


def write_tiny_models(root: Path) -> Path:
    """The test suite's tiny models in the command line's models-folder layout."""
    sys.path.insert(0, str(REPO))
    from tests.tiny_models.models_dir import write_tiny_cli_models

    return write_tiny_cli_models(root)


def audio_stage_peak(song: Path, models: Path) -> None:
    """Worker: the command line's audio stage alone (read the song, wav2vec2 features); prints its peak RSS."""
    from singer_core.pipeline import session
    from singer_core.pipeline.model_files import locate_models
    from singer_core.pipeline.options import GenerationOptions

    waveform, rate = session.read_song(song)
    session.prepare_audio(locate_models(models), waveform, rate, GenerationOptions(), torch.device("cpu"))
    print(json.dumps({"audio_stage_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def write_song_44k(path: Path, seconds: float) -> Path:
    """A 44.1 kHz stereo 16-bit wav of ``seconds`` (two tones), the rate and layout most songs have."""
    rate, total = 44100, int(seconds * 44100)

    def chunks():
        for start in range(0, total, rate):
            t = np.arange(start, min(start + rate, total)) / rate
            yield (np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]) * 0.3 * 32767).astype(np.int16)

    return _write_wav(path, rate, chunks())


def read_stage_peak(song: Path) -> None:
    """Worker: ``load_waveform`` alone (44.1 kHz stereo file -> 16 kHz mono); prints its peak and what it keeps,
    over the process's resident size before reading."""
    import av  # noqa: F401 - the decoder and the resampler are loaded before the baseline: not the song's memory
    import soxr  # noqa: F401

    from singer_core.audio.waveform import load_waveform

    def rss() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    before = max(rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    waveform = load_waveform(song)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    print(json.dumps({"read_peak_mb": round(peak, 1), "read_kept_mb": round(rss() - before, 1),
                      "samples_16k": int(waveform.shape[0])}))  # fmt: skip


def read_memory(args) -> list[dict]:
    """Peak memory of reading 44.1 kHz stereo songs of each length in ``args.read_memory`` to 16 kHz mono."""
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="singer-read-memory-") as tmp:
        for seconds in (float(x) for x in args.read_memory.split(",")):
            song = write_song_44k(Path(tmp) / f"song_{seconds:g}.wav", seconds)
            out, _ = _child([sys.executable, str(Path(__file__).resolve()), "--read-stage", str(song)], REPO, env)
            row = {"benchmark": "read_memory", "song_seconds": seconds, "rate": 44100, "channels": 2,
                   **json.loads(out.strip().splitlines()[-1])}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


# Started by a small launcher: Linux records the exec'ing process's former address space's high-water mark in
# the new program's ru_maxrss, so a child forked from this benchmark (torch loaded, songs written: ~600-680 MB)
# would report max(this process's peak, its own). The launcher imports nothing heavy, so its child's figure is
# the child's own. (Measured: the audio stage of a 240 s song read 677 MB that way, 611 MB launched like this.)
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
sys.stderr.write(f"\\n__child_peak_kb__ {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}\\n")
"""


def _child(command: list[str], cwd: Path, env: dict) -> tuple[str, float]:
    """Run ``command`` through ``_LAUNCHER``; its stdout and its own peak RSS in MB (``wait4`` on it alone).
    Output goes to files, not pipes, so a chatty child (progress bars) cannot block."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        subprocess.run([sys.executable, "-c", _LAUNCHER, *command], cwd=cwd, env=env, stdout=out, stderr=err)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    marker = [line.split() for line in stderr.splitlines() if line.startswith("__child_peak_kb__")]
    if not marker or marker[-1][2] != "0":
        raise SystemExit(f"{' '.join(command[:5])} ... failed:\n{stderr[-2000:]}")
    return stdout, int(marker[-1][1]) / 1024


def picture_size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def write_picture(path: Path, size: tuple[int, int]) -> Path:
    """A ``size`` picture: a textured background with the example face where the tiny detector reports a face
    (its default box, relative to the longer side), as the host tests' pictures."""
    from PIL import Image

    from tests.test_paste import textured_photo

    width, height = size
    photo = textured_photo(width, height)
    side = max(width, height)
    x1, y1, x2, y2 = (round(v * side) for v in (0.3, 0.25, 0.7, 0.75))
    x2, y2 = min(x2, width), min(y2, height)
    face = Image.open(REPO / "tests" / "data" / "0001.png").convert("RGB").resize((x2 - x1, y2 - y1))
    photo[y1:y2, x1:x2] = np.asarray(face)
    Image.fromarray(photo).save(path)
    return path


def song_memory(args) -> list[dict]:
    """Peak RSS of the command line on songs of each length in ``args.song_memory`` (seconds)."""
    lengths = [float(x) for x in args.song_memory.split(",")]
    source = Path(args.source or REPO).resolve()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(source)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="singer-song-memory-") as tmp:
        tmp = Path(tmp)
        models = write_tiny_models(tmp / "models")
        image = REPO / "tests" / "data" / "0001.png"
        if args.full_frame:
            image = write_picture(tmp / "picture.png", picture_size(args.full_frame))
        for seconds in lengths:
            song = write_song(tmp / f"song_{seconds:g}.wav", seconds)
            command = [sys.executable, "-m", "singer_core", "generate", "--image", str(image), "--audio", str(song),
                       "--out", str(tmp / "out.mp4"), "--models", str(models), "--size", str(args.resolution),
                       "--steps", "1", "--device", "cpu"]  # fmt: skip
            start = time.perf_counter()
            out, peak = _child(command + (["--full-frame"] if args.full_frame else []), source, env)
            wall = time.perf_counter() - start
            _, audio_peak = _child([sys.executable, str(Path(__file__).resolve()), "--audio-stage", str(song),
                                        str(models)], source, env)  # fmt: skip
            row = {"benchmark": "song_memory", "song_seconds": seconds, "resolution": args.resolution,
                   "peak_rss_mb": round(peak, 1), "audio_stage_peak_rss_mb": round(audio_peak, 1),
                   "wall_s": round(wall, 1), "source": str(source), "cli": out.strip().splitlines()[-1]}  # fmt: skip
            if args.full_frame:
                start = time.perf_counter()
                _, plain_peak = _child(command, source, env)
                plain_wall = time.perf_counter() - start
                frames = int(out.strip().splitlines()[-1].split("(")[1].split()[0])
                row |= {"full_frame": args.full_frame, "window_only_peak_rss_mb": round(plain_peak, 1),
                        "window_only_wall_s": round(plain_wall, 1), "frames": frames,
                        "added_s_per_frame": round((wall - plain_wall) / frames, 4),
                        "load_avg_1min": round(os.getloadavg()[0], 2)}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        minutes = (last["song_seconds"] - first["song_seconds"]) / 60
        growth = last["peak_rss_mb"] - first["peak_rss_mb"]
        row = {"benchmark": "song_memory_growth", "from_s": first["song_seconds"], "to_s": last["song_seconds"],
               "peak_rss_difference_mb": round(growth, 1), "mb_per_minute": round(growth / minutes, 1),
               "audio_stage_difference_mb": round(last["audio_stage_peak_rss_mb"] - first["audio_stage_peak_rss_mb"],
                                                  1)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def paste_timing(args) -> dict:
    """Seconds per frame of pasting a 512x512 window back into a picture of ``args.paste_timing`` (in process), and
    of encoding full-size frames against window-size frames (the encoder's share of what the paste adds)."""
    from PIL import Image

    from singer_core.face.reference import crop_window
    from singer_core.pipeline.paste import PasteBack, Placement
    from singer_core.video_io import VideoWriter

    torch.set_num_threads(args.threads)
    width, height = picture_size(args.paste_timing)
    frames, window = 32, 512
    with tempfile.TemporaryDirectory(prefix="singer-paste-timing-") as tmp:
        photo = np.asarray(Image.open(write_picture(Path(tmp) / "p.png", (width, height))))
        face = np.array([0.4 * width, 0.3 * height, 0.6 * width, 0.3 * height + 0.2 * width])
        box = crop_window(width, height, face, window, window, "face", 2.0)
        results = {}
        for color_match in (False, True):
            paste = PasteBack(photo, Placement.of(box, window, window, width, height), color_match=color_match)
            batch = torch.rand(paste.frames_per_piece, window, window, 3)
            paste.composite(batch)  # warm-up
            start = time.perf_counter()
            for _ in range(frames // len(batch)):
                paste.composite(batch)
            results[color_match] = (time.perf_counter() - start) / frames
        encode = {}
        for name, size in (("full", (height - height % 2, width - width % 2)), ("window", (window, window))):
            batch = torch.rand(2, *size, 3)
            with VideoWriter(Path(tmp) / f"{name}.mp4", 25) as writer:
                start = time.perf_counter()
                for _ in range(frames // 2):
                    writer.write(batch)
                encode[name] = (time.perf_counter() - start) / frames
    row = {"benchmark": "paste_timing", "picture": f"{width}x{height}", "window_in_photo": list(box),
           "model_window": window, "threads": args.threads, "composite_s_per_frame": round(results[False], 4),
           "composite_color_match_s_per_frame": round(results[True], 4),
           "encode_full_s_per_frame": round(encode["full"], 4), "encode_window_s_per_frame": round(encode["window"], 4),
           "added_s_per_frame": round(results[False] + encode["full"] - encode["window"], 4),
           "load_avg_1min": round(os.getloadavg()[0], 2)}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolution", type=int, default=256, help="square output size (multiple of 64)")
    parser.add_argument("--frames", type=int, default=4, help="frames of the clip (official 16)")
    parser.add_argument("--motion-frames", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="denoising steps (official 40)")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--scheduler", default="ddim", choices=["ddim", "dpmpp", "euler"])
    parser.add_argument("--decode-batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="the test fixtures' tiny architecture (smoke test)")
    parser.add_argument("--song-memory", metavar="SECONDS,SECONDS",
                        help="peak memory of the command line on songs of these lengths (tiny models) instead")
    parser.add_argument("--source", help="with --song-memory: the checkout whose command line runs (default: this one)")
    parser.add_argument("--read-memory", metavar="SECONDS,SECONDS",
                        help="peak memory of reading 44.1 kHz stereo songs of these lengths to 16 kHz mono instead")
    parser.add_argument("--full-frame", metavar="WxH",
                        help="with --song-memory: generate --full-frame on a picture of this size (and without, to "
                        "compare)")
    parser.add_argument("--paste-timing", metavar="WxH", help="seconds per frame of pasting back into a WxH picture")
    parser.add_argument("--audio-stage", nargs=2, metavar=("SONG", "MODELS"), help=argparse.SUPPRESS)
    parser.add_argument("--read-stage", metavar="SONG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.audio_stage:
        audio_stage_peak(Path(args.audio_stage[0]), Path(args.audio_stage[1]))
    elif args.read_stage:
        read_stage_peak(Path(args.read_stage))
    elif args.paste_timing:
        paste_timing(args)
    elif args.read_memory:
        read_memory(args)
    elif args.song_memory:
        song_memory(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
