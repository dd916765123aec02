"""Side-by-side baseline: time the OFFICIAL SINGER code (GitHub yl4467/singer) on this machine.

``bench_modules.py`` measures this project's modules; this script measures the same two units of
work with the official classes, built and called exactly as the official pipeline does, so that
speed-ups are measured under the same machine conditions (same CPU, threads and load) instead of
quoted. It imports the official code from a checkout of yl4467/singer (``--official-repo``); no
official code lives in this repository.

* ``reference``: one reference-UNet write pass (``ReferenceAttentionControl`` in write mode) over
  ``ref_latents.repeat(2, 1, 1, 1)`` (6 rows), ``[uncond, cond]`` image tokens, timestep 0;
  the UNet as ``from_pretrained`` leaves it (eval mode).
* ``denoise``: one denoising-UNet call (CFG pair) at ``--frames`` frames, built with ``from_config``
  (train mode) and ``enable_gradient_checkpointing()`` like the inference script, reading a bank
  that the official write pass produces: the reference UNet runs on the meta device to give the
  bank its shapes, the entries are filled with random values and ``reader.update(writer)`` casts
  them with its default dtype (float16). Audio tokens, face-locator features, masks and
  ``motion_scale`` have the pipeline's shapes.

Full-size SD 1.5 configuration (``tests/fixtures/singer_net_manifest.json``) with random weights
(nothing is downloaded), CPU, float32, under ``torch.no_grad()`` as the pipeline. At 512x512 the
configuration is unchanged; at other sizes the last ``attention_head_dim`` entry (mid block and
SFM) is set to the mid-block width, which the official SFM requires (fixtures README, quirk 7).
Each module runs in its own fresh subprocess, so ``peak_mb`` (``ru_maxrss``) is that module's
alone; one JSON line per module, the fields of ``bench_modules.py`` plus ``"implementation":
"official"``. The only stand-ins are empty ``xformers`` / ``xformers.ops`` modules (imported, never
used, by the official motion module).

Set-up of the separate interpreter (the official code needs diffusers 0.27):

    python3.11 -m venv /root/.cache/official-venv
    echo torch==2.13.0 > /root/.cache/official-constraints.txt
    /root/.cache/official-venv/bin/pip install torch==2.13.0
    /root/.cache/official-venv/bin/pip install -c /root/.cache/official-constraints.txt \\
        diffusers==0.27.2 transformers==4.39.2 huggingface_hub==0.25.2 numpy==1.26.4 einops==0.8.0 \\
        omegaconf==2.3.0 "setuptools<81" pytorch_wavelets==1.3.0 PyWavelets safetensors accelerate

Run from the repository root, next to ``bench_modules.py`` with the same options:

    /root/.cache/official-venv/bin/python benchmarks/bench_official.py --official-repo /work/ref/singer \\
        --modules reference,denoise --frames 2 --resolution 512 --warmup --repeat 2
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import sys
import time
import types
from collections import Counter
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import harness  # noqa: E402
from benchmarks.random_weights import randomize  # noqa: E402

MODULES = ("reference", "denoise")
N_MOTION = 2  # official motion frames
SD15_HEADS = 8  # attention_head_dim of SD 1.5, which the official SFM needs equal to the mid-block width
BLOCKS_3D = {  # the block types UNet3DConditionModel.from_pretrained_2d substitutes
    "down_block_types": ["CrossAttnDownBlock3D"] * 3 + ["DownBlock3D"],
    "up_block_types": ["UpBlock3D"] + ["CrossAttnUpBlock3D"] * 3,
    "mid_block_type": "UNetMidBlock3DCrossAttn",
}


def import_official(repo: Path) -> types.SimpleNamespace:
    """The official classes, with empty stand-ins for ``xformers`` (imported at import time, unused)."""
    xformers, ops = types.ModuleType("xformers"), types.ModuleType("xformers.ops")
    xformers.ops = ops
    for stand_in in (xformers, ops):  # a spec, for importlib.util.find_spec in diffusers
        stand_in.__spec__ = importlib.machinery.ModuleSpec(stand_in.__name__, None)
        sys.modules.setdefault(stand_in.__name__, stand_in)
    sys.path.insert(0, str(repo))
    from models.models.mutual_self_attention import ReferenceAttentionControl
    from models.models.unet_2d_condition import UNet2DConditionModel
    from models.models.unet_3d_revised import UNet3DConditionModel

    return types.SimpleNamespace(control=ReferenceAttentionControl, unet2d=UNet2DConditionModel,
                                 unet3d=UNet3DConditionModel)  # fmt: skip


def manifest() -> dict:
    return json.loads((REPO / "tests" / "fixtures" / "singer_net_manifest.json").read_text())


def denoise_config(resolution: int) -> dict:
    """SD 1.5 with the 3D block types; at other sizes than 512 the mid block's heads match its width."""
    config = dict(manifest()["sd15_unet_config"], **BLOCKS_3D)
    mid_width = resolution // 64
    if mid_width != SD15_HEADS:
        config["attention_head_dim"] = [SD15_HEADS] * 3 + [mid_width]
    return config


def build_unet(cls, config: dict, train: bool, **kwargs) -> nn.Module:
    """``from_config`` with parameters on the meta device (buffers real), then random fp32 weights."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        unet = cls.from_config(config, **kwargs)
    unet = randomize(unet, torch.device("cpu"), torch.float32)
    unet.enable_gradient_checkpointing()
    return unet.train(train)


def controls(official, unet: nn.Module, mode: str):
    return official.control(unet, do_classifier_free_guidance=True, mode=mode, batch_size=1, fusion_blocks="full")


def banks(writer) -> list[torch.Tensor]:
    """Every bank entry of the writer's transformer blocks, in module order."""
    return [entry for block in writer.unet.modules() for entry in getattr(block, "bank", [])]


def write_pass(unet: nn.Module, latents: torch.Tensor, tokens: torch.Tensor) -> None:
    """The pipeline's reference call: [ref, motion frames] for both CFG halves, timestep 0."""
    unet(latents.repeat(2, 1, 1, 1), torch.zeros((), dtype=torch.int64), encoder_hidden_states=tokens,
         return_dict=False)  # fmt: skip


def reference_call(official, args, randn):
    unet = build_unet(official.unet2d, manifest()["sd15_unet_config"], train=False)
    writer = controls(official, unet, "write")
    latent = args.resolution // 8
    latents, tokens = randn(1 + N_MOTION, 4, latent, latent), randn(2, 4, 768)

    def call():
        writer.clear()
        write_pass(unet, latents, tokens)

    return unet, call, lambda: check_bank(banks(writer), latent)


def random_bank_writer(official, latent: int, randn):
    """A writer whose bank has the shapes of the official write pass (run on the meta device) and
    random values."""
    with torch.device("meta"):
        unet = official.unet2d.from_config(manifest()["sd15_unet_config"]).eval()
    writer = controls(official, unet, "write")
    with torch.device("meta"), torch.no_grad():
        write_pass(unet, torch.empty(1 + N_MOTION, 4, latent, latent), torch.empty(2, 4, 768))
    for block in unet.modules():
        if hasattr(block, "bank"):
            block.bank = [randn(*entry.shape) for entry in block.bank]
    check_bank(banks(writer), latent)
    return writer


def denoise_call(official, args, randn):
    unet = build_unet(official.unet3d, denoise_config(args.resolution), train=True,
                      **manifest()["unet_additional_kwargs"])  # fmt: skip
    latent, frames = args.resolution // 8, args.frames
    reader = controls(official, unet, "read")
    reader.update(random_bank_writer(official, latent, randn))

    def masks(fill: float) -> list[torch.Tensor]:
        return [torch.full((2 * frames, (latent >> level) ** 2), fill) for level in range(4)]

    def cfg_pair(*shape) -> torch.Tensor:  # [zeros (uncond), random (cond)], as the pipeline
        return torch.cat([torch.zeros(1, *shape), randn(1, *shape)])

    inputs = {
        "encoder_hidden_states": randn(2, 4, 768),
        "mask_cond_fea": cfg_pair(320, frames, latent, latent),
        "full_mask": masks(1.0),
        "face_mask": masks(0.5),
        "lip_mask": masks(0.2),
        "audio_embedding": cfg_pair(frames, 32, 768),
        "motion_scale": [1.0, 1.0, 1.0],
    }
    sample = torch.cat([randn(1, 4, frames, latent, latent)] * 2)
    timestep = torch.tensor(500)
    output = {}

    def call():
        output["noise_pred"] = unet(sample, timestep, return_dict=False, **inputs)[0]

    return unet, call, lambda: check_prediction(output["noise_pred"], frames, latent)


def check_bank(bank: list[torch.Tensor], latent: int) -> None:
    """16 entries [6, hw, C]: 5 per level at 320/640/1280 channels (down 2, up 3) and the mid block's."""
    expected = Counter({(latent**2, 320): 5, ((latent >> 1) ** 2, 640): 5, ((latent >> 2) ** 2, 1280): 5,
                        ((latent >> 3) ** 2, 1280): 1})  # fmt: skip
    found = Counter((entry.shape[1], entry.shape[2]) for entry in bank)
    assert found == expected, f"bank shapes {found} != {expected}"
    assert all(entry.shape[0] == 2 * (1 + N_MOTION) for entry in bank), [tuple(e.shape) for e in bank]
    assert all(torch.isfinite(entry).all() for entry in bank), "non-finite bank entry"


def check_prediction(noise_pred: torch.Tensor, frames: int, latent: int) -> None:
    assert noise_pred.shape == (2, 4, frames, latent, latent), tuple(noise_pred.shape)
    assert torch.isfinite(noise_pred).all(), "non-finite noise_pred"


def timed(call, args) -> tuple[float | None, list[float], list[float]]:
    """First (warm-up) call time, then wall and CPU time of each of ``repeat`` calls."""
    first = None
    if args.warmup:
        start = time.perf_counter()
        call()
        first = time.perf_counter() - start
    times, cpu_times = [], []
    for _ in range(args.repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return first, times, cpu_times


def measure(module: str, args) -> dict:
    """Runs in the worker subprocess: build the official module, time it, check its output."""
    torch.set_num_threads(args.threads)
    official = import_official(Path(args.official_repo))
    gen = torch.Generator("cpu").manual_seed(1)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    unet, call, check = (reference_call if module == "reference" else denoise_call)(official, args, randn)
    weights_mb = sum(p.numel() * p.element_size() for p in unet.parameters()) / 2**20
    rss_before = harness.rss_mb()
    with torch.no_grad():
        first, times, cpu_times = timed(call, args)
    check()
    return {
        "module": module,
        "implementation": "official",
        "device": "cpu",
        "dtype": "fp32",
        "resolution": args.resolution,
        "frames": None if module == "reference" else args.frames,
        "batch": 2 * (1 + N_MOTION) if module == "reference" else 2 * args.frames,
        "threads": args.threads,
        **harness.timing_fields(first, times, cpu_times),
        "weights_mb": round(weights_mb),
        "rss_after_build_mb": round(rss_before),
        "peak_mb": round(harness.peak_rss_mb()),
    }


def run_isolated(module: str, args) -> dict:
    extra = ["--official-repo", args.official_repo]
    return harness.run_isolated(__file__, module, args, extra, implementation="official")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-repo", required=True, help="checkout of GitHub yl4467/singer")
    harness.add_timing_arguments(parser, MODULES)
    args = parser.parse_args(argv)
    harness.check_modules(parser, args, MODULES)
    if not (Path(args.official_repo) / "models" / "models" / "unet_3d_revised.py").is_file():
        parser.error(f"{args.official_repo} is not a checkout of yl4467/singer")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse(argv)
    return harness.run_modules(args, measure, run_isolated)


if __name__ == "__main__":
    main()
