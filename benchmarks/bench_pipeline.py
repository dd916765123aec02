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
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path

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


FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


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
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
