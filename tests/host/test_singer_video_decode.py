"""'SINGER Video Decode' with a VAE in sd-vae-ft-mse's architecture and file layout, loaded by the core VAELoader."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.host.harness import ON_BOTH_HOSTS, Prompt

pytestmark = [pytest.mark.host, ON_BOTH_HOSTS]


@pytest.fixture(scope="module")
def sd_vae_name(models_dir):
    from tests.tiny_models.comfy_vae import write_sd_vae

    write_sd_vae(models_dir / "vae" / "sd_vae_random.safetensors")
    return "sd_vae_random.safetensors"


def _saved_images(comfy_server, outcome, node_id: str) -> np.ndarray:
    files = outcome.outputs[node_id]["images"]
    arrays = [np.asarray(Image.open(comfy_server.base_dir / "output" / f["subfolder"] / f["filename"])) for f in files]
    return np.stack(arrays)


def _frames_prompt(vae_name: str, batch_size: int, tiled: bool) -> tuple[Prompt, str, str]:
    """Three 64x64 frames of the test photo -> VAE Encode -> decoded by the core node and by ours."""
    prompt = Prompt()
    image = prompt.add("LoadImage", image="0001.png")
    small = prompt.add("ImageScale", image=Prompt.out(image), upscale_method="area", width=64, height=64,
                       crop="center")
    frames = prompt.add("RepeatImageBatch", image=Prompt.out(small), amount=3)
    vae = prompt.add("VAELoader", vae_name=vae_name)
    latent = prompt.add("VAEEncode", pixels=Prompt.out(frames), vae=Prompt.out(vae))
    core = prompt.add("VAEDecode", samples=Prompt.out(latent), vae=Prompt.out(vae))
    ours = prompt.add("SingerVideoDecode", vae=Prompt.out(vae), latent=Prompt.out(latent), batch_size=batch_size,
                      tiled=tiled, tile_size=128)
    core_save = prompt.add("SaveImage", images=Prompt.out(core), filename_prefix="decode_core")
    ours_save = prompt.add("SaveImage", images=Prompt.out(ours), filename_prefix=f"decode_ours_{tiled}")
    return prompt, core_save, ours_save


def test_batched_decode_matches_the_core_vae_decode(comfy_server, sd_vae_name, input_dir, run_prompt):
    prompt, core_save, ours_save = _frames_prompt(sd_vae_name, batch_size=2, tiled=False)
    outcome = run_prompt(prompt, timeout=300)
    assert outcome.status == "success", outcome.error
    core, ours = _saved_images(comfy_server, outcome, core_save), _saved_images(comfy_server, outcome, ours_save)
    assert ours.shape == core.shape == (3, 64, 64, 3)
    assert np.abs(ours.astype(int) - core.astype(int)).max() <= 1  # PNG rounding of identical float frames


def test_tiled_decode_gives_the_same_frames_shape(comfy_server, sd_vae_name, input_dir, run_prompt):
    prompt, core_save, ours_save = _frames_prompt(sd_vae_name, batch_size=3, tiled=True)
    outcome = run_prompt(prompt, timeout=300)
    assert outcome.status == "success", outcome.error
    assert _saved_images(comfy_server, outcome, ours_save).shape == (3, 64, 64, 3)


def test_a_non_video_latent_is_refused(comfy_server, sd_vae_name, run_prompt):
    prompt = Prompt()
    vae = prompt.add("VAELoader", vae_name=sd_vae_name)
    latent = prompt.add("EmptyHunyuanLatentVideo", width=64, height=64, length=5, batch_size=1)
    ours = prompt.add("SingerVideoDecode", vae=Prompt.out(vae), latent=Prompt.out(latent), batch_size=2, tiled=False,
                      tile_size=512)
    prompt.add("PreviewImage", images=Prompt.out(ours))
    outcome = run_prompt(prompt)
    assert outcome.status == "error"
    assert outcome.error.exception_type.endswith("InputError")
    assert "[frames, channels, height, width]" in outcome.error.message
    assert comfy_server.alive()
