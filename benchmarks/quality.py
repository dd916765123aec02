"""What each speed option costs in quality: a small test set generated with the official settings and with each
speed option, through the batch generator, evaluated against the official-settings videos (and a reference set).

    python benchmarks/quality.py --models MODELS --out DIR [--jobs JOBS.csv] [--reference REF_DIR]
                                 [--variants official,dpmpp-half,...] [--metrics psnr,ssim,...] [--device cuda]
    python benchmarks/quality.py --tiny --out DIR      # CPU, tiny random models: the code path, not the numbers

Each variant is a list of ``batch`` command-line options on top of the official settings (the generate
defaults), so it is validated by the same parser as a user's command; a variant the library does not offer
(e.g. ``no-cfg`` before guidance <= 1 existed) is reported as ``unavailable`` with the library's message.
Videos go to ``DIR/videos/<variant>/`` (resumable: the batch skips finished videos and keeps their timings).
The report: one JSON line per variant on stdout and in ``DIR/quality.jsonl``, and ``DIR/quality.md``.

Fields of a line: ``variant``, ``args`` (its options; ``base_args``: those of every variant), ``status``
(ok / failed / unavailable), ``videos``,
``frames``, ``generate_s`` (wall time of the clips summed over the videos: sampling, decoding, encoding; face and
audio preparation are the same for every variant and excluded), ``s_per_frame``, ``speedup`` (official
``generate_s`` / this one), ``vs_official`` (mean PSNR/SSIM/... of each video against the official-settings
video of the same name), ``metrics`` (no-reference means: CPBD, BAS, ...), ``delta`` (``metrics`` minus the
official variant's), ``vs_reference`` (with ``--reference``), ``skipped`` (metrics that could not run, why).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from singer_core.errors import InputError  # noqa: E402

# name -> batch options over the official settings. "{half}" / "{quarter}": the official step count / 2, / 4.
VARIANTS: dict[str, list[str]] = {
    "official": [],
    # The official settings again: the floor of every comparison (H.264 encoding is not bit-reproducible).
    "official-again": [],
    "dpmpp-half": ["--scheduler", "dpmpp", "--steps", "{half}"],
    "dpmpp-quarter": ["--scheduler", "dpmpp", "--steps", "{quarter}"],
    "fp16": ["--dtype", "fp16"],
    "bf16": ["--dtype", "bf16"],
    "latent-motion": ["--motion-source", "latent"],
    "no-cfg": ["--guidance", "1"],
    "decode-batch-8": ["--decode-batch", "8"],
    "fast": ["--scheduler", "dpmpp", "--steps", "{quarter}", "--dtype", "{half_dtype}", "--motion-source", "latent",
             "--decode-batch", "8"],
    "fast-no-cfg": ["--scheduler", "dpmpp", "--steps", "{quarter}", "--dtype", "{half_dtype}", "--motion-source",
                    "latent", "--decode-batch", "8", "--guidance", "1"],
}
# --tiny: tiny random models at 64x64, clips of 8 frames, 4 official steps.
TINY_ARGS = ["--size", "64", "--clip-length", "8", "--steps", "4"]
TINY_SECONDS = 0.6  # 15 frames: two clips, so the motion-frame options matter
DEFAULT_SECONDS = 4.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="working folder: test set, videos, report")
    parser.add_argument("--models", help="models folder (ComfyUI layout); with --tiny, built in DIR/tiny_models")
    parser.add_argument("--jobs", help="test-set CSV (image, audio, name, ...); default: the example face and "
                        "song of tests/data, cut to --seconds")  # fmt: skip
    parser.add_argument("--seconds", type=float, help=f"length of the default test song (default {DEFAULT_SECONDS})")
    parser.add_argument("--reference", help="folder of reference videos named as the jobs (e.g. ground truth)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    parser.add_argument("--metrics", help="comma-separated metric names (default: every metric that can run)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--steps", type=int, help="official step count to start from (default: generate's, 40)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models on 64x64 (CPU smoke run)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed 1-step warm-up generation")
    parser.add_argument("extra", nargs="*", help="more batch options for every variant, after --")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    from singer_core.evaluation import METRICS

    unknown = sorted(set(args.metrics.split(",")) - set(METRICS)) if args.metrics else []
    if unknown:
        parser.error(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    if not args.tiny and not args.models:
        parser.error("--models is required (or --tiny)")
    return args


def tiny_models(root: Path) -> Path:
    """A models folder of tiny random models, as the tests build it."""
    from tests.tiny_models.models_dir import write_tiny_cli_models

    if not (root / "singer" / "net.safetensors").is_file():
        write_tiny_cli_models(root)
    return root


def default_test_set(folder: Path, seconds: float) -> Path:
    """jobs.csv for the example face and the first ``seconds`` of the example song (tests/data)."""
    import av
    import numpy as np

    from singer_core.audio.waveform import read_audio_file

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "tests" / "data" / "0001.png", folder / "0001.png")
    waveform, rate = read_audio_file(REPO / "tests" / "data" / "0001.wav")
    pcm = (waveform[:, : int(seconds * rate)].clamp(-1, 1) * 32767).round().short().numpy()
    layout = "stereo" if pcm.shape[0] == 2 else "mono"
    with av.open(str(folder / "0001.wav"), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.T.reshape(1, -1)), format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with (folder / "jobs.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["image", "audio", "name"], ["0001.png", "0001.wav", "0001"]])
    return folder / "jobs.csv"


def variant_args(name: str, steps: int, device) -> list[str]:
    half_dtype = "fp16" if device.type == "cuda" else "bf16"  # fp16 matmuls are slow or missing on CPUs
    values = {"half": str(max(steps // 2, 1)), "quarter": str(max(steps // 4, 1)), "half_dtype": half_dtype}
    return [part.format(**values) for part in VARIANTS[name]]


class Generator:
    """Runs one variant through the batch code with models loaded once for every variant."""

    def __init__(self, jobs: Path, models: Path, base: list[str], device) -> None:
        from singer_core.batch import LoadedModels, Shard
        from singer_core.pipeline.model_files import locate_models

        self.jobs, self.models_dir, self.base = jobs, models, base
        self.shard = Shard(0, 1, device)
        self.models = LoadedModels(locate_models(models), device)

    def plan(self, out: Path, options: list[str]):
        """The batch's own parsing and validation of ``options`` (InputError when the library rejects them)."""
        from singer_core.__main__ import _parser
        from singer_core.batch import read_jobs

        args = _parser().parse_args(["batch", str(self.jobs), "--out", str(out), "--models", str(self.models_dir),
                                     *self.base, *options])  # fmt: skip
        return read_jobs(self.jobs, args, args.generate_parser)

    def run(self, out: Path, options: list[str]) -> list[dict]:
        from singer_core.batch import run_jobs

        def log(message: str, **_) -> None:
            print(f"{out.name}: {message}", file=sys.stderr, flush=True)

        return run_jobs(self.plan(out, options), out, self.models, self.shard, log=log) or []


def evaluate_variant(folder: Path, official: Path | None, reference: Path | None, metrics: list[str] | None,
                     models: Path, device) -> dict:  # fmt: skip
    """Metric means of one variant: against the official videos, alone (no-reference metrics), against the
    reference set. Each group uses only the metrics of the registry that fit it."""
    from singer_core.evaluation import METRICS, evaluate

    chosen = list(metrics or METRICS)
    paired = [m for m in chosen if METRICS[m].needs_reference]
    alone = [m for m in chosen if not METRICS[m].needs_reference]
    result: dict = {"skipped": {}}

    def means(generated, ref, names):
        if not names:
            return {}
        try:
            report = evaluate(generated, ref, metrics=names, models=models, device=device, progress=False)
        except InputError as error:  # none of these metrics can run here (weights missing ...)
            result["skipped"].update({n: str(error) for n in names})
            return {}
        result["skipped"].update(report.skipped)
        for row in report.rows:
            for metric, error in row.errors.items():
                result["skipped"][f"{metric}:{row.name}"] = error
        return {**report.means, **report.set_values}

    if official is not None:
        result["vs_official"] = means(folder, official, paired)
    result["metrics"] = means(folder, None, alone)
    if reference is not None:
        result["vs_reference"] = means(folder, reference, chosen)
    return result


def finite(value):
    """JSON has no inf/nan (a per-frame PSNR of identical frames is inf): write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


def markdown(lines: list[dict]) -> str:
    metric_keys = sorted({k for line in lines for k in line.get("vs_official", {})})
    alone_keys = sorted({k for line in lines for k in line.get("metrics", {})})
    ref_keys = sorted({k for line in lines for k in line.get("vs_reference", {})})
    head = ["variant", "status", "options", "s/frame", "speedup", *(f"{k} vs official" for k in metric_keys),
            *(f"Δ {k}" for k in alone_keys), *(f"{k} vs reference" for k in ref_keys)]  # fmt: skip

    def cell(value) -> str:
        return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)

    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in lines:
        values = [line["variant"], line["status"], " ".join(line["args"]) or "(official)",
                  cell(line.get("s_per_frame")), cell(line.get("speedup")),
                  *(cell(line.get("vs_official", {}).get(k)) for k in metric_keys),
                  *(cell(line.get("delta", {}).get(k)) for k in alone_keys),
                  *(cell(line.get("vs_reference", {}).get(k)) for k in ref_keys)]  # fmt: skip
        rows.append("| " + " | ".join(values) + " |")
    notes = [f"- {line['variant']}: {line['error']}" for line in lines if line.get("error")]
    return "\n".join(rows + ([""] + notes if notes else [])) + "\n"


def run(argv: list[str] | None = None) -> list[dict]:
    import torch

    from singer_core.__main__ import _device

    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(args.device)
    models = tiny_models(out / "tiny_models") if args.tiny and not args.models else Path(args.models)
    seconds = args.seconds or (TINY_SECONDS if args.tiny else DEFAULT_SECONDS)
    jobs = Path(args.jobs) if args.jobs else default_test_set(out / "testset", seconds)
    base = [*(TINY_ARGS if args.tiny else []), *(["--steps", str(args.steps)] if args.steps else []), *args.extra]
    generator = Generator(jobs, models, base, device)
    steps = generator.plan(out / "videos" / "official", []).jobs[0].options.steps
    metrics = args.metrics.split(",") if args.metrics else None
    names = args.variants.split(",")
    if "official" not in names:
        names.insert(0, "official")
    if not args.no_warmup:  # CUDA context, kernels, allocator: not charged to the first variant
        generator.run(out / "warmup", ["--steps", "1"])
    lines, official = [], None
    for name in names:
        line = {"variant": name, "args": variant_args(name, steps, device), "base_args": base, "device": str(device),
                "torch": torch.__version__}  # fmt: skip
        folder = out / "videos" / name
        try:
            generator.plan(folder, line["args"])
        except InputError as error:
            line.update(status="unavailable", error=str(error).splitlines()[0])
            print(json.dumps(finite(line)), flush=True)
            lines.append(line)
            continue
        rows = generator.run(folder, line["args"])
        done = [r for r in rows if r["status"] != "failed"]
        failed = [r for r in rows if r["status"] == "failed"]
        line["status"] = "ok" if done and not failed else "failed"
        if failed:
            line["error"] = "; ".join(f"{r['name']}: {r['error']}" for r in failed)
        line["videos"] = len(done)
        line["frames"] = sum(r["frames"] or 0 for r in done)
        line["generate_s"] = sum(r["generate_seconds"] or 0.0 for r in done)
        line["s_per_frame"] = line["generate_s"] / line["frames"] if line["frames"] else None
        if done:
            line.update(evaluate_variant(folder, None if name == "official" else out / "videos" / "official",
                                         Path(args.reference) if args.reference else None, metrics, models, device))
        if name == "official":
            official = line
        if official is not None and official.get("generate_s") and line.get("generate_s"):
            line["speedup"] = official["generate_s"] / line["generate_s"]
            line["delta"] = {k: v - official["metrics"][k] for k, v in line.get("metrics", {}).items()
                             if k in official.get("metrics", {})}  # fmt: skip
        line["load_avg_1min"] = os.getloadavg()[0]
        print(json.dumps(finite(line)), flush=True)
        lines.append(line)
    (out / "quality.jsonl").write_text("".join(json.dumps(finite(line)) + "\n" for line in lines))
    (out / "quality.md").write_text(markdown(lines))
    return lines


if __name__ == "__main__":
    start = time.perf_counter()
    run()
    print(f"quality benchmark done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
