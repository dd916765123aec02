"""'SINGER Decode to Video' in the real server: the shipped workflow's sampler -> our VIDEO -> the core
Save Video, against the IMAGE path (SINGER Video Decode -> Create Video) on the same latents."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from tests.host.harness import ON_BOTH_HOSTS
from tests.host.test_singer_workflow import FPS, SIZE, _fast_workflow, _id, _saved_video, _song_seconds

pytestmark = [pytest.mark.host, ON_BOTH_HOSTS]

REPLACED = ("SaveVideo", "CreateVideo", "SingerVideoDecode", "SingerDecodeVideo", "PreviewImage", "SaveImage")


def _output_slot(comfy_server, class_type: str, name: str) -> int:
    return comfy_server.object_info()[class_type]["output_name"].index(name)


def _both_paths(comfy_server, singer_models) -> tuple[dict, dict]:
    """The shipped workflow up to the sampler, then both ways to a saved video, and the VIDEO's components."""
    prompt = _fast_workflow(comfy_server, singer_models, steps=1)
    for node_id in [k for k, v in prompt.items() if v["class_type"] in REPLACED]:
        del prompt[node_id]
    for node in prompt.values():  # nothing left depends on what was removed
        assert all(not isinstance(v, list) or v[0] in prompt for v in node["inputs"].values()), node
    sampler, vae, song = _id(prompt, "SingerSampler"), _id(prompt, "VAELoader"), _id(prompt, "LoadAudio")
    latent = [sampler, _output_slot(comfy_server, "SingerSampler", "latent")]
    fps = [sampler, _output_slot(comfy_server, "SingerSampler", "fps")]
    ids = {}

    def add(key: str, class_type: str, **inputs) -> list:
        ids[key] = str(1000 + len(ids))
        prompt[ids[key]] = {"class_type": class_type, "inputs": inputs}
        return [ids[key], 0]

    video = add("ours", "SingerDecodeVideo", vae=[vae, 0], latent=latent, fps=fps, audio=[song, 0], batch_size=4,
                tiled=False, tile_size=512)
    add("save_ours", "SaveVideo", video=video, filename_prefix="stream/ours", format="auto", codec="auto")
    images = add("images", "SingerVideoDecode", vae=[vae, 0], latent=latent, batch_size=4, tiled=False,
                 tile_size=512)
    created = add("created", "CreateVideo", images=images, fps=fps, audio=[song, 0])
    add("save_created", "SaveVideo", video=created, filename_prefix="stream/created", format="auto", codec="auto")
    components = add("components", "GetVideoComponents", video=video)
    add("save_components", "SaveImage", images=components, filename_prefix="stream/components")
    add("save_images", "SaveImage", images=images, filename_prefix="stream/images")
    return prompt, ids


def _decoded(path) -> tuple[np.ndarray, float | None]:
    with av.open(str(path)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
        audio = container.streams.audio[0] if container.streams.audio else None
        seconds = None if audio is None else float(audio.duration * audio.time_base)
    return frames, seconds


def _saved_images(comfy_server, outcome, node_id: str) -> np.ndarray:
    files = outcome.outputs[node_id]["images"]
    return np.stack([np.asarray(Image.open(comfy_server.base_dir / "output" / f["subfolder"] / f["filename"]))
                     for f in files])  # fmt: skip


def test_latent_to_saved_video_with_the_song(comfy_server, singer_models, input_dir, run_prompt):
    prompt, ids = _both_paths(comfy_server, singer_models)
    outcome = run_prompt(prompt, timeout=600)
    assert outcome.status == "success", outcome.error

    ours, ours_audio = _decoded(_saved_video(comfy_server, outcome, ids["save_ours"]))
    created, created_audio = _decoded(_saved_video(comfy_server, outcome, ids["save_created"]))
    frames = len(ours)
    assert abs(frames - _song_seconds(input_dir / "0001.wav") * FPS) <= 1
    assert ours.shape == (frames, SIZE, SIZE, 3) and created.shape == ours.shape
    assert ours_audio is not None and abs(ours_audio - frames / FPS) < 0.1  # the song, cut to the video
    # Same decoded frames; the two files differ only by the encoders' settings (CRF 18 vs ComfyUI's default).
    assert np.abs(ours.astype(int) - created.astype(int)).mean() < 4
    # get_components decodes the same frames the IMAGE path gives, to fp32 rounding: ComfyUI's VAE.decode splits
    # its batches by free memory, so the two calls may decode different batch shapes (one 8-bit level at most).
    images = _saved_images(comfy_server, outcome, ids["save_images"])
    components = _saved_images(comfy_server, outcome, ids["save_components"])
    assert components.shape == images.shape
    assert np.abs(components.astype(int) - images.astype(int)).max() <= 1
    assert len(images) == frames
