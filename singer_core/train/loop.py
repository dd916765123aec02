"""The training run: Hugging Face Accelerate for processes, mixed precision, gradient sync and resume state.

``RUN/`` layout::

    RUN/config.yaml                          the resolved configuration of the run
    RUN/checkpoints/singer-step-<N>.safetensors   the full net (LoRA merged), loadable as MODELS/singer/<name>
    RUN/state/step-<N>/                      accelerate state (trainable weights, optimizer, scheduler, RNG)
    RUN/logs/metrics.jsonl                   one JSON line per step (+ TensorBoard events in RUN/logs/)
    RUN/validation/step-<N>-<video>.mp4      validation videos through the product pipeline

A run in an existing ``RUN/`` resumes from the newest ``state/step-<N>`` automatically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from singer_core.config import NetConfig
from singer_core.errors import InputError, ModelFileMissingError
from singer_core.train.config import TrainConfig
from singer_core.train.data import ClipShape, RankSampler, TrainingClips, step_dropouts
from singer_core.train.model import (
    SAVE_DTYPES,
    apply_lora,
    build_training_net,
    enable_gradient_checkpointing,
    hold_frozen,
    save_net,
    select_trainable,
)
from singer_core.train.objective import SingerTrainingStep, StepDraws, TrainBatch, training_scheduler

logger = logging.getLogger("singer_core.train")
LATENT_SCALE = 0.18215  # the official hard-coded factor (singer_core.sampling.LATENT_SCALE)
STATE_PATTERN = re.compile(r"^step-(\d+)$")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class RunPaths:
    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def validation(self) -> Path:
        return self.root / "validation"

    def weights(self, step: int) -> Path:
        return self.checkpoints / f"singer-step-{step}.safetensors"

    def latest_state(self) -> tuple[int, Path] | None:
        found = [(int(m.group(1)), p) for p in self.state.glob("step-*") if (m := STATE_PATTERN.match(p.name))]
        complete = [(s, p) for s, p in found if (p / "run.json").is_file()]  # run.json is written last
        return max(complete) if complete else None


@dataclass
class TrainResult:
    steps: int
    last_loss: float
    checkpoints: list[Path]
    resumed_from: int
    trainable_parameters: int
    seconds_per_step: float


def locate_start(models: Path, name: str) -> Path:
    """``MODELS/singer/NAME``: a net file (SINGER/Hallo, .safetensors/.pth) or a Hallo stage-1 folder."""
    from singer_core.layout import SINGER
    from singer_core.pipeline.model_files import pick_model

    folder = Path(models) / SINGER.name
    if not Path(models).is_dir():
        raise ModelFileMissingError(f"Models folder not found: {models}. Pass --models with the folder that holds "
                                    "singer/ and vae/ (the layout of `python -m singer_core generate`).")
    if (folder / name).exists():
        return folder / name
    return pick_model(Path(models), SINGER, name, "starting checkpoint",
                      "the SINGER net.pth, Hallo's net.pth or a Hallo stage-1 folder",
                      files_only=True)


def locate_vae(models: Path) -> Path:
    from singer_core.layout import VAE
    from singer_core.pipeline.model_files import pick_model

    return pick_model(Path(models), VAE, None, "VAE", "sd-vae-ft-mse (diffusers folder or single .safetensors)")


def _make_accelerator(config: TrainConfig, paths: RunPaths):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    from singer_core.train.trackers import trackers_for

    mixed = config.train.mixed_precision
    notes = []
    if mixed == "fp16" and not torch.cuda.is_available():
        # Accelerate runs fp16 autocast on accelerators only; CPU bf16 autocast is real (tested)
        notes.append(
            "mixed precision fp16 needs a GPU: this CPU run uses float32 "
            "(train.mixed_precision=bf16 trains in bf16 on a CPU)"
        )
        mixed = "no"
    log_with, tracker_note = trackers_for(config.train.tracker, paths.logs)
    if tracker_note:
        notes.append(tracker_note)
    accelerator = Accelerator(
        # CPU-only machine: several processes (torchrun / `accelerate launch --multi_gpu`) talk over gloo
        cpu=not torch.cuda.is_available(),
        mixed_precision=mixed,
        gradient_accumulation_steps=config.train.gradient_accumulation,
        log_with=log_with or None,
        project_config=ProjectConfiguration(project_dir=str(paths.root), logging_dir=str(paths.logs)),
        # motion modules of blocks without attention never run (quirk 1) and a dropped condition leaves its
        # modules without gradient: DDP must not wait for them
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    return accelerator, mixed, notes


def _make_optimizer(config: TrainConfig, params: list[torch.nn.Parameter], device: torch.device | None = None):
    """The configured optimizer over ``params``; ``device``: where they will train (default: where they are)."""
    opt = config.optimizer
    kwargs = {"lr": opt.lr, "betas": tuple(opt.betas), "weight_decay": opt.weight_decay, "eps": opt.eps}
    if opt.name == "adamw8bit":
        reason = _adamw8bit_unavailable(device or (params[0].device if params else torch.device("cpu")))
        if reason is None:
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, **kwargs), "bitsandbytes AdamW8bit"
        return torch.optim.AdamW(params, **kwargs), f"torch AdamW (8-bit AdamW unavailable: {reason})"
    return torch.optim.AdamW(params, **kwargs), "torch AdamW"


def _adamw8bit_unavailable(device: torch.device) -> str | None:
    """Why bitsandbytes' AdamW8bit cannot run on ``device`` (None when it can). Which devices a bitsandbytes
    build supports changes between releases (CPU since its multi-backend builds), so one step on a probe
    tensor (above its 4096-element threshold for 8-bit state) decides."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return "bitsandbytes is not installed (pip install bitsandbytes)"
    try:
        probe = torch.nn.Parameter(torch.zeros(4096, device=device))
        probe.grad = torch.ones_like(probe)
        bnb.optim.AdamW8bit([probe], lr=1e-3).step()
    except Exception as error:  # noqa: BLE001 - any failure means: not on this device
        return f"bitsandbytes {getattr(bnb, '__version__', '?')} cannot run it on {device.type}: {error}"
    return None


def _frozen_dtype(config: TrainConfig, mixed: str) -> torch.dtype:
    """The frozen weights' format: the config's, or (``auto``) the mixed-precision one. 16-bit frozen weights
    compute under their format's autocast, so where mixed precision fell back to ``no`` they are float32."""
    name = config.model.frozen_dtype
    if name == "auto" or (name != "fp32" and mixed == "no"):
        name = "fp32" if mixed == "no" else mixed
    return DTYPES[name]


def _collate(items: list[dict]) -> dict:
    from torch.utils.data import default_collate

    return default_collate(items)


def _encode(vae, pixels: torch.Tensor, eps: torch.Tensor, sample: bool) -> torch.Tensor:
    """Scaled latents of ``pixels`` [n, 3, S, S]: ``(mean + std * eps) * 0.18215`` (official ``sample()``) or
    the mean (inference's choice)."""
    dist = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
    latents = dist.mean + dist.std * eps.to(dist.mean) if sample else dist.mean
    return latents.float() * LATENT_SCALE


@torch.no_grad()
def make_batch(vae, items: dict, drop_motion: bool, sample: bool, device) -> tuple[TrainBatch, torch.Tensor]:
    """VAE latents of a collated batch; returns the batch and the timesteps."""
    pixels, ref_pixels = items["pixels"], items["ref_pixels"].clone()
    if drop_motion:
        ref_pixels[:, 1:] = 0.0  # official start_ratio: motion frames become zero (grey) images
    b, f = pixels.shape[:2]
    latents = _encode(vae, pixels.flatten(0, 1), items["latent_eps"].flatten(0, 1), sample)
    latents = latents.unflatten(0, (b, f)).transpose(1, 2).contiguous()  # [b, 4, f, h, w]
    ref = _encode(vae, ref_pixels.flatten(0, 1), items["ref_latent_eps"].flatten(0, 1), sample)
    batch = TrainBatch(
        latents=latents.to(device),
        ref_latents=ref.unflatten(0, (b, -1)).to(device),
        audio_windows=items["audio_windows"].to(device),
        face_embedding=items["face_embedding"].to(device),
        face_region=items["face_region"].to(device),
        full_mask=[m.to(device) for m in items["full_mask"]],
        face_mask=[m.to(device) for m in items["face_mask"]],
        lip_mask=[m.to(device) for m in items["lip_mask"]],
    )
    return batch, items["timestep"].to(device)


class Trainer:
    """One run; ``run()`` trains to ``train.max_steps`` (resuming if ``RUN/state`` has a state)."""

    def __init__(self, data: Path, models: Path, checkpoint: str, out: Path, config: TrainConfig):
        from singer_core.data.format import SingerDataset

        self.config, self.paths = config, RunPaths(Path(out))
        self.dataset = SingerDataset(data)
        if self.dataset.size != config.data.size:
            raise InputError(f"The dataset {data} was prepared at {self.dataset.size}x{self.dataset.size} but "
                             f"data.size (--size) is {config.data.size}; use --size {self.dataset.size} or "
                             "prepare the dataset again at that size.")
        if config.model.architecture and not Path(config.model.architecture).is_file():
            raise InputError(f"config key model.architecture: file not found: {config.model.architecture}.")
        self.start_path = locate_start(Path(models), checkpoint)
        self.vae_path = locate_vae(Path(models))

    # -- setup ---------------------------------------------------------------------------------------------

    def setup(self) -> None:
        from diffusers.optimization import get_scheduler

        from singer_core.pipeline.vae_loading import load_vae

        config = self.config
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.accelerator, self.mixed, notes = _make_accelerator(config, self.paths)
        acc = self.accelerator
        architecture = NetConfig.from_file(config.model.architecture) if config.model.architecture else None
        net, start = build_training_net(self.start_path, architecture, init_seed=config.model.msm_init_seed)
        self._check_audio_shape(net)
        trainable = select_trainable(net, config.model.trainable)
        if config.lora.rank:
            trainable = apply_lora(net, trainable, config.lora.rank, config.lora.alpha, config.train.seed)
        if config.model.gradient_checkpointing:
            enable_gradient_checkpointing(net)
        frozen = _frozen_dtype(config, self.mixed)
        hold_frozen(net, frozen)
        self.net = net
        self.vae = load_vae(self.vae_path, device=acc.device, dtype=frozen)
        self.vae.requires_grad_(False)
        params = [p for p in net.parameters() if p.requires_grad]
        self.trainable_count = sum(p.numel() for p in params)
        optimizer, optimizer_name = _make_optimizer(config, params, acc.device)
        scheduler = get_scheduler(
            config.optimizer.lr_scheduler, optimizer=optimizer,
            num_warmup_steps=config.optimizer.warmup_steps, num_training_steps=config.train.max_steps,
        )  # fmt: skip
        self.step_module = SingerTrainingStep(net, training_scheduler(config.noise), config.noise)
        self.step_module, self.optimizer, self.lr_scheduler = acc.prepare(self.step_module, optimizer, scheduler)
        downscale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        latent = config.data.size // downscale
        shape = ClipShape(config.data.frames, config.data.motion_frames, latent, latent)
        self.clips = TrainingClips(self.dataset, shape, config.train.seed, config.noise.num_train_timesteps)
        self.params = params
        lora = f" via LoRA rank {config.lora.rank}" if config.lora.rank else ""
        notes += [
            f"start: {start.source} ({start.kind}); initialised from scratch: {len(start.initialised)} tensors",
            f"trainable: {', '.join(config.model.trainable)}{lora} = {self.trainable_count:,} parameters in "
            f"{len(params)} tensors",
            f"optimizer: {optimizer_name}; processes: {acc.num_processes}; batch {config.train.batch_size} per "
            f"process x {config.train.gradient_accumulation} accumulation; mixed precision: {self.mixed}",
            f"data: {len(self.clips)} videos usable ({self.clips.skipped} too short)",
        ]
        for note in notes:
            self.say(note)

    def _check_audio_shape(self, net) -> None:
        record = self.dataset[0].record if len(self.dataset) else None
        expected = net.audioproj.window_shape[1:]
        if record is not None and (record.audio_layers, record.audio_hidden) != tuple(expected):
            raise InputError(
                f"The dataset's audio features are {record.audio_layers} layers x {record.audio_hidden} but the net "
                f"expects {expected[0]} x {expected[1]}: prepare the dataset with the wav2vec2 model of this net."
            )

    def say(self, text: str) -> None:
        if self.accelerator.is_main_process:
            tqdm.write(f"[train] {text}")

    # -- the loop ---------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        self.setup()
        acc, config = self.accelerator, self.config
        step = self.resume()
        if acc.is_main_process:
            (self.paths.root / "config.yaml").write_text(config.to_yaml())
        acc.init_trackers("singer-train", config={"preset": config.preset, "lr": config.optimizer.lr})
        ga = config.train.gradient_accumulation
        sampler = RankSampler(step * ga, config.train.max_steps * ga, config.train.batch_size, acc.process_index,
                              acc.num_processes)
        loader = torch.utils.data.DataLoader(
            self.clips, batch_size=config.train.batch_size, sampler=sampler, num_workers=config.data.num_workers,
            collate_fn=_collate,
        )  # fmt: skip
        bar = tqdm(total=config.train.max_steps, initial=step, desc="training", disable=not acc.is_local_main_process)
        micro = step * ga
        last_loss, started, timed_steps, saved = math.nan, time.perf_counter(), 0, []
        step_start = time.perf_counter()
        losses = []
        for items in loader:
            drops = step_dropouts(config.train.seed, micro, config.dropout.reference, config.dropout.audio,
                                  config.dropout.motion)
            with acc.accumulate(self.step_module):
                batch, timesteps = make_batch(self.vae, items, drops.motion, config.data.latent_sample, acc.device)
                draws = StepDraws(items["noise"].to(acc.device), items["offset"].to(acc.device), timesteps,
                                  drops.reference, drops.audio, drops.motion)
                out = self.step_module(batch, draws)
                acc.backward(out.loss)
                if acc.sync_gradients and config.optimizer.max_grad_norm > 0:
                    acc.clip_grad_norm_(self.params, config.optimizer.max_grad_norm)
                self.optimizer.step()
                self.lr_scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            losses.append(out.loss.detach())
            micro += 1
            if not acc.sync_gradients:
                continue
            step += 1
            last_loss = acc.gather(torch.stack(losses).mean()[None]).mean().item()
            losses = []
            seconds = time.perf_counter() - step_start
            timed_steps += 1
            acc.log({"train_loss": last_loss, "lr": self.lr_scheduler.get_last_lr()[0], "step_seconds": seconds},
                    step=step)
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4f}", step_s=f"{seconds:.2f}")
            if step % config.train.checkpoint_every == 0 or step == config.train.max_steps:
                saved.append(self.save(step))
            if config.train.validation_every and step % config.train.validation_every == 0:
                self.validate(step)
            step_start = time.perf_counter()
        bar.close()
        acc.wait_for_everyone()
        elapsed = (time.perf_counter() - started) / max(timed_steps, 1)
        result = TrainResult(step, last_loss, [p for p in saved if p is not None], self.resumed_from,
                             self.trainable_count, elapsed)
        self.write_summary(result)  # before end_training: that ends the process group
        acc.end_training()
        return result

    def write_summary(self, result: TrainResult) -> None:
        """``RUN/summary.json``: the result and a digest of the trained weights from every process; replicas
        that drifted apart (they must not: gradients are all-reduced) are reported."""
        from accelerate.utils import gather_object

        net = self.accelerator.unwrap_model(self.step_module).net
        digests = gather_object([weights_digest(net)])
        if len(set(digests)) > 1:
            self.say(f"WARNING: the processes ended with different weights: {digests}")
        if self.accelerator.is_main_process:
            summary = {"steps": result.steps, "last_loss": result.last_loss, "resumed_from": result.resumed_from,
                       "seconds_per_step": result.seconds_per_step, "trainable_parameters": result.trainable_parameters,
                       "processes": self.accelerator.num_processes, "weights_digest_per_process": digests,
                       "checkpoints": [str(p) for p in result.checkpoints]}  # fmt: skip
            (self.paths.root / "summary.json").write_text(json.dumps(summary, indent=1))

    # -- checkpoints -------------------------------------------------------------------------------------------

    def resume(self) -> int:
        latest = self.paths.latest_state()
        self.resumed_from = 0
        if latest is None:
            return 0
        step, folder = latest
        self.accelerator.load_state(str(folder))
        run = json.loads((folder / "run.json").read_text())
        if run.get("trainable") != self.config.model.trainable or run.get("lora_rank") != self.config.lora.rank:
            raise InputError(f"{folder} was saved by a run with another trainable set or LoRA rank; use a new --out "
                             "folder, or the settings of that run.")
        self.resumed_from = step
        self.say(f"resumed from {folder} (step {step})")
        return step

    def save(self, step: int) -> Path | None:
        acc = self.accelerator
        folder = self.paths.state / f"step-{step}"
        acc.wait_for_everyone()
        acc.save_state(str(folder))
        weights = None
        if acc.is_main_process:
            net = acc.unwrap_model(self.step_module).net
            dtype = SAVE_DTYPES["fp32"] if self.mixed == "no" and self.config.model.frozen_dtype in ("auto", "fp32") \
                else SAVE_DTYPES["fp16"]
            weights = save_net(net, self.paths.weights(step), dtype)
            run = {"step": step, "trainable": self.config.model.trainable, "lora_rank": self.config.lora.rank,
                   "start": str(self.start_path), "weights": str(weights)}
            (folder / "run.json").write_text(json.dumps(run, indent=1))
            self._prune_states()
            self.say(f"step {step}: saved {weights} and {folder}")
        acc.wait_for_everyone()
        return weights

    def _prune_states(self) -> None:
        states = sorted((int(m.group(1)), p) for p in self.paths.state.glob("step-*")
                        if (m := STATE_PATTERN.match(p.name)))  # fmt: skip
        for _, folder in states[: -self.config.train.keep_checkpoints]:
            shutil.rmtree(folder, ignore_errors=True)

    # -- validation -------------------------------------------------------------------------------------------

    def validate(self, step: int) -> list[Path]:
        acc = self.accelerator
        written = []
        if acc.is_main_process and self.config.validation.videos:
            from singer_core.train.validation import validation_videos

            net = acc.unwrap_model(self.step_module).net
            with acc.autocast():
                written = validation_videos(net, self.vae, self.dataset, self.config, self.paths.validation, step)
            for path in written:
                self.say(f"validation video: {path}")
        acc.wait_for_everyone()
        return written


def weights_digest(net: torch.nn.Module) -> str:
    """SHA-256 of every trainable tensor's bytes (name order): equal digests = bit-identical weights."""
    digest = hashlib.sha256()
    for name, param in sorted(net.named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


_KEPT: list[Trainer] = []  # see train()


def train(data: Path, models: Path, checkpoint: str, out: Path, config: TrainConfig) -> TrainResult:
    trainer = Trainer(Path(data), Path(models), checkpoint, Path(out), config)
    result = trainer.run()
    if trainer.accelerator.num_processes > 1:
        # Freeing a DDP model's gloo reducer can deadlock (torch 2.13, CPU): ProcessGroupGloo's destructor joins
        # a worker thread that waits for the GIL the freeing thread holds. Seen in the 2-process test; the
        # trainer is kept alive and the CLI ends the process with end_distributed_process().
        _KEPT.append(trainer)
    return result


def end_distributed_process(code: int) -> None:
    """In a process of a distributed run: flush and end the process now (``os._exit``), skipping the
    interpreter teardown of the gloo process group (see :func:`train`); everything is written by then."""
    import os

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
