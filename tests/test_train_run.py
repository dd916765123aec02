"""Whole training runs on the tiny models through the command line (each run is its own process, as a user's):
overfitting, exact resume, a real 2-process (gloo) run, and generation from the saved checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from singer_core.checkpoint import CONFIG_METADATA_KEY, KIND_METADATA_KEY
from tests.tiny_models.net import tiny_net_config, write_tiny_singer_checkpoint
from tests.tiny_models.train_data import write_tiny_dataset
from tests.tiny_models.vae import write_diffusers_folder

REPO = Path(__file__).resolve().parents[1]
# tiny and fast: 2-frame clips of 64x64 videos, no validation video, plain files for logs
COMMON = ["--size", "64", "--set", "data.frames=2", "--set", "data.num_workers=0", "--set", "train.validation_every=0",
          "--set", "train.tracker=jsonl"]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    """In-process work here (fixed-draw losses, generation) is tiny: one thread avoids the synchronisation cost
    of two threads on a loaded 2-core machine (the training subprocesses get OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_run")
    write_tiny_dataset(root / "data", videos=2, frames=8, size=64)
    write_tiny_singer_checkpoint(root / "models" / "singer" / "net.safetensors")
    write_diffusers_folder(root / "models" / "vae" / "sd-vae-tiny")
    return root


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def train(workspace: Path, out: str, *extra: str, launcher: list[str] | None = None,
          timeout: int = 600) -> subprocess.CompletedProcess:  # fmt: skip
    command = [*(launcher or [sys.executable, "-m"]), "singer_core.train", "--data", str(workspace / "data"),
               "--models", str(workspace / "models"), "--checkpoint", "net.safetensors", "--out",
               str(workspace / out), *COMMON, *extra]  # fmt: skip
    run = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    return run


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [row["train_loss"] for row in rows if "train_loss" in row]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def fixed_draw_loss(workspace: Path, checkpoint: Path) -> float:
    """Mean loss of a net over 8 fixed samples (the same clips, noise and timesteps for every net)."""
    from singer_core.data.format import SingerDataset
    from singer_core.train.config import load_config
    from singer_core.train.data import ClipShape, TrainingClips
    from singer_core.train.loop import _collate, make_batch
    from singer_core.train.model import build_training_net
    from singer_core.train.objective import SingerTrainingStep, StepDraws, training_scheduler
    from tests.tiny_models.vae import tiny_vae

    config = load_config("official", None, ["data.frames=2", "data.size=64"])
    net, _ = build_training_net(checkpoint)
    clips = TrainingClips(SingerDataset(workspace / "data"), ClipShape(2, 2, 8, 8), 123, 1000)
    items = _collate([clips[i] for i in range(8)])
    with torch.no_grad():
        batch, timesteps = make_batch(tiny_vae(), items, False, True, "cpu")
        draws = StepDraws(items["noise"], items["offset"], timesteps, False, False, False)
        out = SingerTrainingStep(net, training_scheduler(config.noise), config.noise)(batch, draws)
    return float((out.mse * out.weights).mean())


@pytest.mark.slow
def test_a_few_dozen_steps_overfit_a_tiny_dataset(workspace):
    """The per-step training loss is dominated by which timestep each step draws, so the fit is measured on
    fixed clips, noise and timesteps with the checkpoints of steps 0, 8, 16 and 24."""
    out = workspace / "overfit"
    extra = ["--max-steps", "24", "--set", "optimizer.lr=5e-3", "--set", "optimizer.weight_decay=0", "--set",
             "train.batch_size=2", "--set", "train.checkpoint_every=8", "--set", "dropout.reference=0", "--set",
             "dropout.audio=0", "--set", "dropout.motion=0"]  # fmt: skip
    run = train(workspace, "overfit", *extra)
    assert "trained to step 24" in run.stdout and len(losses(out)) == 24
    files = [workspace / "models" / "singer" / "net.safetensors"]
    files += [out / "checkpoints" / f"singer-step-{step}.safetensors" for step in (8, 16, 24)]
    fit = [fixed_draw_loss(workspace, path) for path in files]
    assert fit[0] > fit[1] > fit[2] > fit[3] and fit[3] < 0.75 * fit[0], fit
    # the final checkpoint: the full net in the converter's format (kind + architecture in the metadata)
    path = out / "checkpoints" / "singer-step-24.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata[KIND_METADATA_KEY] == "singer"
    assert json.loads(metadata[CONFIG_METADATA_KEY]) == json.loads(tiny_net_config().to_json())
    trained, start = weights(path), weights(workspace / "models" / "singer" / "net.safetensors")
    assert trained.keys() == start.keys()
    changed = {k for k in trained if not torch.equal(trained[k], start[k])}
    assert any(k.startswith("audioproj.") for k in changed) and any(".motion_modules." in k for k in changed)
    assert not any(k.startswith(("reference_unet.", "face_locator.", "imageproj.")) for k in changed)
    assert not any("hidden_spectral_weighting" in k for k in changed)  # official: SFM frozen


@pytest.mark.slow
def test_bf16_mixed_precision_with_8bit_adamw_learns_on_a_cpu(workspace):
    """The official optimizer (bitsandbytes AdamW8bit, 8-bit states) under bf16 mixed precision (CPU autocast,
    frozen weights in bf16): the fit on fixed draws falls, the validation video is written through the product
    pipeline, and the checkpoint holds the full net."""
    out = workspace / "bf16"
    extra = ["--max-steps", "16", "--set", "train.mixed_precision=bf16", "--set", "optimizer.name=adamw8bit",
             "--set", "optimizer.lr=5e-3", "--set", "optimizer.weight_decay=0", "--set", "train.batch_size=2",
             "--set", "train.checkpoint_every=8", "--set", "train.validation_every=16", "--set",
             "validation.seconds=0.2", "--set", "validation.steps=1", "--set", "dropout.reference=0", "--set",
             "dropout.audio=0", "--set", "dropout.motion=0"]  # fmt: skip
    run = train(workspace, "bf16", *extra)
    assert "mixed precision: bf16" in run.stdout and "optimizer: bitsandbytes AdamW8bit" in run.stdout, run.stdout
    assert len(list((out / "validation").glob("step-16-*.mp4"))) == 1
    # bitsandbytes keeps the moments of tensors of 4096+ elements in 8 bits (uint8 codes)
    states = torch.load(out / "state" / "step-16" / "optimizer.bin", weights_only=True)["state"].values()
    quantised = [v for s in states for v in s.get("__bnb_optimizer_quant_state__", {}).values() if torch.is_tensor(v)]
    assert any(v.dtype == torch.uint8 for v in quantised)
    files = [workspace / "models" / "singer" / "net.safetensors"]
    files += [out / "checkpoints" / f"singer-step-{step}.safetensors" for step in (8, 16)]
    fit = [fixed_draw_loss(workspace, path) for path in files]
    assert fit[0] > fit[1] > fit[2], fit
    assert weights(files[-1]).keys() == weights(files[0]).keys()


@pytest.mark.slow
def test_resume_after_an_interruption_continues_exactly(workspace):
    extra = ["--set", "train.batch_size=1", "--set", "train.checkpoint_every=2", "--set", "optimizer.lr=1e-4"]
    train(workspace, "straight", "--max-steps", "4", *extra)
    train(workspace, "interrupted", "--max-steps", "2", *extra)  # stops after step 2 (its state is saved)
    run = train(workspace, "interrupted", "--max-steps", "4", *extra)
    assert "resumed from" in run.stdout + run.stderr and "(resumed from 2)" in run.stdout
    straight = weights(workspace / "straight" / "checkpoints" / "singer-step-4.safetensors")
    resumed = weights(workspace / "interrupted" / "checkpoints" / "singer-step-4.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert losses(workspace / "interrupted")[2:] == losses(workspace / "straight")[2:]
    step2 = weights(workspace / "straight" / "checkpoints" / "singer-step-2.safetensors")
    assert any(not torch.equal(step2[k], straight[k]) for k in straight)  # steps 3-4 did change the weights


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(workspace):
    """A real 2-process gloo run (accelerate launch, CPU only) against 1 process with twice the batch.

    Per-sample min-SNR weighting makes the loss a plain mean over the global batch, which DDP's gradient
    average reproduces exactly; the official batch-mean weighting is a mean per process (see docs/training.md).
    Adam's first step is ~ lr * sign(gradient): entries whose gradient is rounding noise (~1e-9) would move by
    a full +-lr either way, so a large eps makes the update proportional to the gradient for this comparison.
    """
    extra = ["--max-steps", "2", "--set", "noise.snr_weighting=sample", "--set", "optimizer.lr=1e-2", "--set",
             "optimizer.eps=1.0"]  # fmt: skip
    # `--cpu --num_processes 2` starts processes only through mpirun; torchrun (--multi_gpu) starts them here and
    # the trainer, seeing no GPU, joins them over gloo
    for attempt in range(2):
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                    "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()), "-m"]  # fmt: skip
        try:
            train(workspace, "two", *extra, "--set", "train.batch_size=1", launcher=launcher, timeout=300)
            break
        except subprocess.TimeoutExpired as error:
            # seen once in many runs on the shared machine: the rendezvous port, free when picked, was taken
            # before the launcher bound it; a second try on a new port (a deadlock would hang again)
            shutil.rmtree(workspace / "two", ignore_errors=True)
            if attempt:
                raise AssertionError(f"2-process run hung twice: {str(error.stderr)[-3000:]}") from error
    train(workspace, "one", *extra, "--set", "train.batch_size=2")
    summary = json.loads((workspace / "two" / "summary.json").read_text())
    assert summary["processes"] == 2
    digests = summary["weights_digest_per_process"]
    assert len(digests) == 2 and digests[0] == digests[1]  # identical weights on both ranks
    two = weights(workspace / "two" / "checkpoints" / "singer-step-2.safetensors")
    one = weights(workspace / "one" / "checkpoints" / "singer-step-2.safetensors")
    start = weights(workspace / "models" / "singer" / "net.safetensors")
    moved = [k for k in one if not torch.equal(one[k], start[k])]
    assert moved
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.slow
def test_the_saved_checkpoint_generates_through_the_cli(workspace, tmp_path):
    from singer_core.__main__ import main
    from tests.tiny_models.face_onnx import write_antelopev2
    from tests.tiny_models.wav2vec import write_tiny_wav2vec_folder

    checkpoint = workspace / "overfit" / "checkpoints" / "singer-step-24.safetensors"
    if not checkpoint.is_file():
        pytest.skip("needs the checkpoint of test_a_few_dozen_steps_overfit_a_tiny_dataset")
    models = tmp_path / "models"
    (models / "singer").mkdir(parents=True)
    shutil.copy(checkpoint, models / "singer" / "finetuned.safetensors")
    write_diffusers_folder(models / "vae" / "sd-vae-tiny")
    write_tiny_wav2vec_folder(models / "wav2vec2" / "wav2vec2-tiny")
    write_antelopev2(models / "insightface" / "models" / "antelopev2")
    out = tmp_path / "finetuned.mp4"
    data = REPO / "tests" / "data"
    argv = ["generate", "--image", str(data / "0001.png"), "--audio", str(data / "0001.wav"), "--out", str(out),
            "--models", str(models), "--checkpoint", "finetuned.safetensors", "--size", "64", "--steps", "1",
            "--clip-length", "8"]  # fmt: skip
    assert main(argv) == 0
    assert out.is_file() and out.stat().st_size > 0


@pytest.mark.slow
def test_lora_run_saves_merged_weights_and_resumes(workspace):
    extra = ["--set", "lora.rank=4", "--set", "train.batch_size=1", "--set", "optimizer.lr=1e-2",
             "--set", "train.checkpoint_every=2"]  # fmt: skip
    train(workspace, "lora", "--max-steps", "2", *extra)
    run = train(workspace, "lora", "--max-steps", "3", *extra)
    assert "(resumed from 2)" in run.stdout and "via LoRA rank 4" in run.stdout
    start = weights(workspace / "models" / "singer" / "net.safetensors")
    trained = weights(workspace / "lora" / "checkpoints" / "singer-step-3.safetensors")
    assert trained.keys() == start.keys()  # adapters merged: the plain Net layout
    changed = {k for k in start if not torch.equal(trained[k], start[k])}
    assert "audioproj.proj1.weight" in changed and not any(k.endswith(".bias") for k in changed)
    assert not any(k.startswith(("reference_unet.", "imageproj.", "face_locator.")) for k in changed)
