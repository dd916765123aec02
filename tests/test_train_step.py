"""One training step on the tiny net against a reference computed here, from the official formulas.

The reference follows ``train_revised.py`` line by line with diffusers' own pieces: the official training
scheduler (``DDIMScheduler`` with the config kwargs, zero-SNR rescale and ``scaled_linear``), its ``add_noise`` /
``get_velocity``, diffusers' ``compute_snr``, ``F.mse_loss(reduction="mean")`` then the batch-mean min-SNR weight,
and the Net's sub-modules called as the official ``Net.forward`` calls them (per video of the batch).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from diffusers.training_utils import compute_snr

from singer_core.models.conditions import DenoiseConditions, MaskPyramid
from singer_core.train.config import load_config
from singer_core.train.data import ClipShape, TrainingClips
from singer_core.train.loop import _collate, make_batch
from singer_core.train.model import build_training_net, select_trainable
from singer_core.train.objective import SingerTrainingStep, StepDraws, training_scheduler
from tests.tiny_models.net import write_tiny_singer_checkpoint
from tests.tiny_models.train_data import write_tiny_dataset
from tests.tiny_models.vae import tiny_vae

FRAMES, SIZE, BATCH = 4, 64, 2


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: one thread avoids the synchronisation cost on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_step")
    from singer_core.data.format import SingerDataset

    dataset = SingerDataset(write_tiny_dataset(root / "data", frames=10, size=SIZE))
    net, _ = build_training_net(write_tiny_singer_checkpoint(root / "net.safetensors"))
    config = load_config("official", None, [f"data.frames={FRAMES}", f"data.size={SIZE}"])
    trainable = select_trainable(net, config.model.trainable)
    vae = tiny_vae()
    clips = TrainingClips(dataset, ClipShape(FRAMES, 2, SIZE // 8, SIZE // 8), seed=7, num_train_timesteps=1000)
    items = _collate([clips[0], clips[1]])
    return net, vae, config, trainable, items


def official_train_scheduler() -> DDIMScheduler:
    """``get_noise_scheduler`` of train_revised.py with configs/train/train_revised.yaml's kwargs."""
    kwargs = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear",
              "steps_offset": 1, "clip_sample": False}  # fmt: skip
    kwargs.update(rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction")
    kwargs.update({"beta_schedule": "scaled_linear"})
    return DDIMScheduler(**kwargs)


def reference_loss(net, vae, items, offset: float = 0.05, gamma: float = 5.0) -> torch.Tensor:
    scheduler = official_train_scheduler()
    b, f = items["pixels"].shape[:2]
    with torch.no_grad():
        dist = vae.encode(items["pixels"].flatten(0, 1)).latent_dist
        latents = (dist.mean + dist.std * items["latent_eps"].flatten(0, 1)) * 0.18215
        latents = latents.unflatten(0, (b, f)).permute(0, 2, 1, 3, 4).contiguous()
        ref_dist = vae.encode(items["ref_pixels"].flatten(0, 1)).latent_dist
        ref_latents = ((ref_dist.mean + ref_dist.std * items["ref_latent_eps"].flatten(0, 1)) * 0.18215).unflatten(
            0, (b, -1)
        )
    noise = items["noise"] + offset * items["offset"]
    timesteps = items["timestep"]
    noisy = scheduler.add_noise(latents, noise, timesteps)
    target = scheduler.get_velocity(latents, noise, timesteps)
    # Net.forward: imageproj, face locator, audioproj, MSM on the noisy latents, reference write, denoising UNet
    face_emb = net.imageproj(items["face_embedding"])
    mask_feature = net.face_locator(items["face_region"][:, :, None].repeat(1, 1, f, 1, 1))
    audio = net.audioembed(net.audioproj(items["audio_windows"]), noisy)
    preds = []
    for i in range(b):
        bank = net.reference_unet.write_bank(ref_latents[i], None, face_emb[i : i + 1])

        def levels(name, i=i):
            return [m[i].reshape(1, -1).repeat(f, 1) for m in items[name]]

        cond = DenoiseConditions(
            bank=bank, image_tokens=face_emb[i : i + 1], audio_tokens=audio[i : i + 1],
            face_features=mask_feature[i : i + 1], masks=MaskPyramid(levels("full_mask"), levels("face_mask"),
                                                                      levels("lip_mask")),
        )  # fmt: skip
        preds.append(net.denoising_unet(noisy[i : i + 1], timesteps[i : i + 1], cond))
    model_pred = torch.cat(preds)
    snr = compute_snr(scheduler, timesteps) + 1  # v-prediction
    weights = torch.stack([snr, gamma * torch.ones_like(timesteps)], dim=1).min(dim=1)[0] / snr
    loss = F.mse_loss(model_pred.float(), target.float(), reduction="mean")
    return (loss.mean(dim=list(range(1, len(loss.shape)))) * weights).mean()


def trainer_loss(net, vae, config, items, **drops):
    batch, timesteps = make_batch(vae, items, drops.get("motion", False), True, "cpu")
    draws = StepDraws(items["noise"], items["offset"], timesteps, drops.get("reference", False),
                      drops.get("audio", False), drops.get("motion", False))  # fmt: skip
    return SingerTrainingStep(net, training_scheduler(config.noise), config.noise)(batch, draws)


def gradients(net) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def test_step_matches_the_official_formulas(setup):
    net, vae, config, trainable, items = setup
    net.zero_grad(set_to_none=True)
    out = trainer_loss(net, vae, config, items)
    out.loss.backward()
    ours = gradients(net)
    net.zero_grad(set_to_none=True)
    expected = reference_loss(net, vae, items)
    expected.backward()
    theirs = gradients(net)
    net.zero_grad(set_to_none=True)

    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-7)
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-7, msg=name)

    # which parameters learn: exactly the official trainable set, minus the motion modules of the blocks
    # without attention, which never run (quirk 1)
    never_run = ("denoising_unet.down_blocks.3.motion_modules.", "denoising_unet.up_blocks.0.motion_modules.")
    assert set(ours) == {n for n in trainable if not n.startswith(never_run)}
    assert any(n.startswith("audioproj.") for n in ours) and "audioembed.fc.0.weight" in ours
    assert any(".audio_modules." in n for n in ours) and any(".motion_modules." in n for n in ours)
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert not any(n.startswith(("reference_unet.", "face_locator.", "imageproj.")) for n in trainable)
    assert any(n.startswith("denoising_unet.hidden_spectral_weighting.") for n in frozen)  # SFM frozen (official)
    assert {n.split(".")[0] for n in frozen} >= {"reference_unet", "denoising_unet", "face_locator", "imageproj"}
    assert sum(p.numel() for n, p in net.named_parameters() if n.startswith("audioembed.fc.")) == 10


def test_condition_dropouts(setup, monkeypatch):
    net, vae, config, _, items = setup
    net.zero_grad(set_to_none=True)
    trainer_loss(net, vae, config, items, audio=True).loss.backward()
    grads = gradients(net)
    net.zero_grad(set_to_none=True)
    # audio zeroed after the MSM: the audio projection and the MSM gate get no gradient; the rest still learns
    assert not any(n.startswith(("audioproj.", "audioembed.")) for n in grads)
    assert any(".motion_modules." in n for n in grads)

    def no_reference(*args, **kwargs):
        raise AssertionError("the reference UNet must not run when the reference is dropped")

    with torch.no_grad():
        full = trainer_loss(net, vae, config, items).loss
        monkeypatch.setattr(net.reference_unet, "write_bank", no_reference)
        dropped = trainer_loss(net, vae, config, items, reference=True).loss
        monkeypatch.undo()
        motion = trainer_loss(net, vae, config, items, motion=True).loss
    assert dropped.item() != pytest.approx(full.item()) and motion.item() != pytest.approx(full.item())


def test_gradient_checkpointing_gives_the_same_gradients(setup):
    from singer_core.train.model import enable_gradient_checkpointing

    net, vae, config, _, items = setup
    checkpointed = copy.deepcopy(net)
    enable_gradient_checkpointing(checkpointed)
    losses, grads = [], []
    for model in (net, checkpointed):
        model.zero_grad(set_to_none=True)
        out = trainer_loss(model, vae, config, items)
        out.loss.backward()
        losses.append(out.loss.item())
        grads.append(gradients(model))
        model.zero_grad(set_to_none=True)
    assert losses[0] == losses[1]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-8, msg=name)


def test_per_sample_min_snr_weighting(setup):
    net, vae, _, _, items = setup
    config = load_config("official", None, [f"data.frames={FRAMES}", "noise.snr_weighting=sample"])
    with torch.no_grad():
        out = trainer_loss(net, vae, config, items)
    assert out.loss.item() == pytest.approx((out.mse * out.weights).mean().item(), rel=1e-6)
    assert out.weights.min() > 0 and out.weights.max() <= 1


@pytest.mark.parametrize("gradient_checkpointing", [False, True])
def test_bf16_mixed_precision_step_on_cpu(setup, gradient_checkpointing):
    """``train.mixed_precision=bf16`` on a CPU: frozen weights in bf16 (norms float32), trainable float32 master
    weights, the step under CPU bf16 autocast as Accelerate runs it: the float32 loss within bf16 rounding, float32
    gradients on exactly the same parameters. (Gradient directions are not compared: the tiny random net's
    gradients move as much under a 1e-4 relative change of the frozen weights in float32; that it learns in bf16
    is tested by a whole run in test_train_run.py.)"""
    from singer_core.train.model import enable_gradient_checkpointing, hold_frozen

    net, vae, config, _, items = setup
    net.zero_grad(set_to_none=True)
    with torch.no_grad():
        full = trainer_loss(net, vae, config, items)
    reference = copy.deepcopy(net)
    out = trainer_loss(reference, vae, config, items)
    out.loss.backward()
    expected = gradients(reference)

    mixed = copy.deepcopy(net)
    if gradient_checkpointing:
        enable_gradient_checkpointing(mixed)
    hold_frozen(mixed, torch.bfloat16)
    norms = {f"{m}.{p}" for m, mod in mixed.named_modules() if isinstance(mod, torch.nn.GroupNorm | torch.nn.LayerNorm)
             for p, _ in mod.named_parameters(recurse=False)}  # fmt: skip
    for name, param in mixed.named_parameters():
        wanted = torch.float32 if param.requires_grad or name in norms else torch.bfloat16
        assert param.dtype == wanted, name
    assert norms and any(p.dtype == torch.bfloat16 for p in mixed.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = trainer_loss(mixed, vae, config, items)
    low.loss.backward()
    got = gradients(mixed)

    assert full.loss.item() == pytest.approx(out.loss.item(), rel=1e-5)
    assert low.loss.item() == pytest.approx(out.loss.item(), rel=0.01)
    assert got.keys() == expected.keys()
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in got.values())  # master weights'


def test_a_whole_16_bit_net_trains_without_autocast(setup):
    """DeepSpeed's fp16 engine (the official ZeRO-2 setup) casts the whole net, trainable weights included, and
    runs it without autocast: the float32 batch is cast to the net's format, the step runs, and its loss is the
    float32 one within half precision."""
    net, vae, config, _, items = setup
    with torch.no_grad():
        expected = trainer_loss(net, vae, config, items).loss.item()
    half = copy.deepcopy(net).half()
    out = trainer_loss(half, vae, config, items)
    out.loss.backward()
    grads = gradients(half)
    assert out.loss.item() == pytest.approx(expected, rel=0.02)
    assert grads and all(g.dtype == torch.float16 and torch.isfinite(g).all() for g in grads.values())
