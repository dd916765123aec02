"""One training step's loss, as the official ``train_revised.py`` computes it (see docs/training.md).

Per video of the batch: latents of 14 frames, a reference frame and 2 motion frames through the frozen
reference UNet (timestep 0, float16 bank as the official writer), the audio projection and the MSM on the
**noisy** latents, the denoising UNet at one uniform timestep; v-prediction target on the training noise
schedule; min-SNR weighting. The random draws of a step are explicit inputs (:class:`StepDraws`), made from
seeds per sample and per step, so a step is reproducible whatever the process layout (see ``data.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler
from torch import nn

from singer_core.models.conditions import DenoiseConditions, MaskPyramid
from singer_core.models.reference_bank import BANK_DTYPE, ReferenceBank
from singer_core.models.spatial_transformer import SpatialTransformer
from singer_core.net import SingerNet
from singer_core.precision import weight_dtype
from singer_core.train.config import NoiseConfig


def training_scheduler(config: NoiseConfig) -> DDPMScheduler:
    """The noise schedule of training (only ``alphas_cumprod`` is used: ``add_noise`` / ``get_velocity``).

    Official: the DDIM kwargs of the config with ``rescale_betas_zero_snr`` and ``beta_schedule='scaled_linear'``
    set for the training scheduler only; the schedule does not depend on the scheduler class.
    """
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        beta_schedule=config.beta_schedule,
        rescale_betas_zero_snr=config.rescale_zero_snr,
        prediction_type=config.prediction_type,
    )


def snr(scheduler: DDPMScheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ``alpha_bar / (1 - alpha_bar)`` per timestep (diffusers ``compute_snr``)."""
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].double()
    return (alphas / (1 - alphas)).float()


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float, v_prediction: bool):
    """``min(snr', gamma) / snr'`` with ``snr' = snr + 1`` for v-prediction (official)."""
    ratio = snr(scheduler, timesteps)
    if v_prediction:
        ratio = ratio + 1
    return torch.minimum(ratio, torch.full_like(ratio, gamma)) / ratio.clamp_min(torch.finfo(ratio.dtype).tiny)


@dataclass
class StepDraws:
    """Every random choice of one step. ``noise`` [b, 4, f, h, w]; ``offset`` [b, 4, 1, 1, 1] (unit normal,
    scaled by ``noise.offset``); ``timesteps`` [b]; the three dropouts are one draw for the whole batch."""

    noise: torch.Tensor
    offset: torch.Tensor
    timesteps: torch.Tensor
    drop_reference: bool
    drop_audio: bool
    drop_motion: bool


@dataclass
class TrainBatch:
    """Model inputs of a batch (latents already encoded by the frozen VAE).

    ``latents`` [b, 4, f, h, w] and ``ref_latents`` [b, 1 + m, 4, h, w] (reference, motion frames) scaled by
    0.18215; ``audio_windows`` [b, f, 5, L, C]; ``face_embedding`` [b, 512]; ``face_region`` [b, 3, H, W];
    ``masks``: full/face/lip, 4 levels of [b, hw] (one frame, repeated over the clip as the pipeline does).
    """

    latents: torch.Tensor
    ref_latents: torch.Tensor
    audio_windows: torch.Tensor
    face_embedding: torch.Tensor
    face_region: torch.Tensor
    full_mask: list[torch.Tensor]
    face_mask: list[torch.Tensor]
    lip_mask: list[torch.Tensor]


@dataclass
class LossOutput:
    loss: torch.Tensor  # what is back-propagated
    mse: torch.Tensor  # [b] per-sample mean squared error (float32)
    weights: torch.Tensor  # [b] min-SNR weights (ones without weighting)


class TrainingBank(ReferenceBank):
    """A reference bank for one training forward: nothing memoised across calls (each sample's bank is read
    once, and recomputation under gradient checkpointing must redo the same operations)."""

    def derive(self, key, compute):
        return compute()


def empty_bank(unet: nn.Module, halves: int = 1) -> TrainingBank:
    """The bank when the reference UNet is skipped (official ``uncond_img_fwd``: the reader's bank is empty):
    every block then runs plain self-attention and the motion modules see no motion frames. Stored as
    zero-token entries so the denoising UNet needs no special case."""
    bank = TrainingBank(halves=halves)
    for module in unet.modules():
        if isinstance(module, SpatialTransformer):
            channels = module.transformer_blocks[0].norm1.normalized_shape[0]
            bank.features[module.block_path] = torch.zeros(halves, 1, 0, channels, dtype=BANK_DTYPE)
    return bank


def _mask_pyramid(batch: TrainBatch, i: int, frames: int) -> MaskPyramid:
    def levels(masks: list[torch.Tensor]) -> list[torch.Tensor]:
        return [m[i].reshape(1, -1).expand(frames, -1) for m in masks]

    return MaskPyramid(full=levels(batch.full_mask), face=levels(batch.face_mask), lip=levels(batch.lip_mask))


def _in_compute_dtype(net: nn.Module, batch: TrainBatch, noisy: torch.Tensor) -> tuple[TrainBatch, torch.Tensor]:
    """Inputs in the net's format when no autocast does it: DeepSpeed's fp16/bf16 engines cast the whole net
    (trainable weights included) and run it without autocast, as the official code does with its weight dtype.
    Under autocast (Accelerate's mixed precision) or with a float32 net the inputs are left as they are."""
    if torch.is_autocast_enabled(noisy.device.type):
        return batch, noisy
    dtype = weight_dtype(net)
    if dtype == noisy.dtype:
        return batch, noisy

    def cast(value):
        return [cast(v) for v in value] if isinstance(value, list) else value.to(dtype)

    fields = {f.name: cast(getattr(batch, f.name)) for f in dataclasses.fields(batch)}
    return TrainBatch(**fields), noisy.to(dtype)


class SingerTrainingStep(nn.Module):
    """Wraps the net so that Accelerate/DDP see one ``forward`` (gradient sync hooks fire on backward).

    ``state_dict`` holds only the trainable tensors (and the MSM buffer): the frozen weights come from the
    starting checkpoint, so resume states stay small.
    """

    def __init__(self, net: SingerNet, scheduler: DDPMScheduler, noise: NoiseConfig):
        super().__init__()
        self.net = net
        self.scheduler = scheduler
        self.noise = noise

    def forward(self, batch: TrainBatch, draws: StepDraws) -> LossOutput:
        noise_cfg = self.noise
        latents = batch.latents
        noise = draws.noise + noise_cfg.offset * draws.offset
        timesteps = draws.timesteps
        # contiguous: a channel-permuted layout here made the CPU backward pass crash (torch 2.13)
        noisy = self.scheduler.add_noise(latents, noise, timesteps).contiguous()
        if noise_cfg.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        prediction = self.predict(batch, noisy, timesteps, draws)
        mse = (prediction.float() - target.float()).square().flatten(1).mean(1)
        return self.weighted(mse, timesteps)

    def weighted(self, mse: torch.Tensor, timesteps: torch.Tensor) -> LossOutput:
        cfg = self.noise
        if cfg.snr_gamma <= 0:
            return LossOutput(mse.mean(), mse.detach(), torch.ones_like(mse))
        weights = min_snr_weights(self.scheduler, timesteps, cfg.snr_gamma, cfg.prediction_type == "v_prediction")
        if cfg.snr_weighting == "batch":  # official: F.mse_loss(reduction="mean"), then x mean(weights)
            loss = mse.mean() * weights.mean()
        else:
            loss = (mse * weights).mean()
        return LossOutput(loss, mse.detach(), weights)

    def predict(self, batch: TrainBatch, noisy: torch.Tensor, timesteps: torch.Tensor, draws: StepDraws):
        """Model output [b, 4, f, h, w]: batched small modules, then one denoising-UNet call per video (the UNet
        takes one clip's conditions; per-video calls give the same result as a batch, GroupNorm is per sample)."""
        net = self.net
        batch, noisy = _in_compute_dtype(net, batch, noisy)
        frames = noisy.shape[2]
        image_tokens = net.imageproj(batch.face_embedding)  # [b, T, C]
        face_features = net.face_locator(batch.face_region[:, :, None])  # [b, C0, 1, h, w]
        audio = net.audioproj(batch.audio_windows)  # [b, f, tokens, A]
        if net.audioembed is not None:
            audio = net.audioembed(audio, noisy)  # MSM on the noisy latents at t (official training)
        if draws.drop_audio:
            audio = torch.zeros_like(audio)
        outputs = []
        for i in range(noisy.shape[0]):
            tokens = image_tokens[i : i + 1]
            if draws.drop_reference:
                bank = empty_bank(net.denoising_unet)
            else:
                written = net.reference_unet.write_bank(batch.ref_latents[i], None, tokens)
                bank = TrainingBank(halves=1, features=written.features)
            conditions = DenoiseConditions(
                bank=bank,
                image_tokens=tokens,
                audio_tokens=audio[i : i + 1],
                face_features=face_features[i : i + 1],
                masks=_mask_pyramid(batch, i, frames),
            )
            outputs.append(net.denoising_unet(noisy[i : i + 1], timesteps[i : i + 1], conditions))
        return torch.cat(outputs)

    # -- resume state: the trainable part only ---------------------------------------------------------------

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        full = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        keep |= {name for name, _ in self.named_buffers() if "dct_layer" in name}
        for key in [k for k in full if k.startswith(prefix) and k[len(prefix) :] not in keep]:
            del full[key]
        return full

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        expected = set(self.state_dict().keys())
        missing, unexpected = expected - set(state_dict), set(state_dict) - expected
        if strict and (missing or unexpected):
            raise RuntimeError(
                f"resume state does not match this run's trainable set: {len(missing)} missing "
                f"(e.g. {sorted(missing)[:3]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:3]})."
            )
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        # report only the keys this state is about (the frozen weights are never in it)
        return type(result)(sorted(missing), sorted(unexpected))
