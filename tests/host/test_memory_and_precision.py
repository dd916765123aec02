"""The pack as a ComfyUI citizen: models under ComfyUI's memory manager (/free unloads them), a run never
changes the cached net, previews arrive while sampling, and model choices outside the lists are refused."""

from __future__ import annotations

import shutil
import struct
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.host.events import ServerEvents
from tests.host.harness import ON_0_3_75_ONLY, ON_BOTH_HOSTS, Prompt, refused_by_the_node, run_refused

pytestmark = [pytest.mark.host, ON_BOTH_HOSTS]

SIZE = 64
PREVIEW_EVENTS = (1, 4)  # ComfyUI's BinaryEventTypes.PREVIEW_IMAGE and PREVIEW_IMAGE_WITH_METADATA
JPEG_START = b"\xff\xd8\xff"


def _sampling_prompt(singer_models, ckpt_name: str, precision: str = "fp32", dtype: str = "auto", steps: int = 2,
                     prefix: str = "latents/singer", cfg: float = 3.5, seed: int = 42) -> tuple[Prompt, dict[str, str]]:
    """Photo + song -> SINGER Sampler -> SaveLatent, on the tiny models at 64x64."""
    prompt = Prompt()
    ids = {}
    image = prompt.add("LoadImage", image="0001.png")
    audio = prompt.add("LoadAudio", audio="0001.wav")
    ids["loader"] = prompt.add("SingerCheckpointLoader", ckpt_name=ckpt_name, precision=precision)
    encoder = prompt.add("SingerAudioEncoderLoader", wav2vec_name=singer_models["wav2vec_name"])
    faces = prompt.add("SingerFaceAnalyzerLoader", model_pack=singer_models["model_pack"])
    vae = prompt.add("VAELoader", vae_name=singer_models["vae_name"])
    encoded = prompt.add("SingerAudioEncode", audio_encoder=Prompt.out(encoder), audio=Prompt.out(audio),
                         clip_length=16)
    reference = prompt.add("SingerReferenceEncode", image=Prompt.out(image), vae=Prompt.out(vae),
                           face_analyzer=Prompt.out(faces), width=SIZE, height=SIZE, face_expand_ratio=1.2,
                           framing="face", face_index=0)
    ids["sampler"] = prompt.add("SingerSampler", singer_model=Prompt.out(ids["loader"]),
                                singer_audio=Prompt.out(encoded),
                                reference=Prompt.out(reference), seed=seed, steps=steps, cfg=cfg, pose_weight=1.0,
                                face_weight=1.0, lip_weight=1.0, motion_frames=2, scheduler="ddim", dtype=dtype)
    ids["save"] = prompt.add("SaveLatent", samples=Prompt.out(ids["sampler"]), filename_prefix=prefix)
    return prompt, ids


def _saved_latents(comfy_server, outcome, save_id: str) -> torch.Tensor:
    (saved,) = outcome.outputs[save_id]["latents"]
    path = comfy_server.base_dir / "output" / saved["subfolder"] / saved["filename"]
    return load_file(str(path))["latent_tensor"]


def _cached_nodes(outcome) -> set[str]:
    return {node for kind, data in outcome.history["status"]["messages"] if kind == "execution_cached"
            for node in data["nodes"]}


def test_fp16_request_leaves_the_cached_fp32_net_as_loaded(comfy_server, singer_models, models_dir, input_dir,
                                                           run_prompt):
    """fp32 on a freshly loaded net, then fp16 (refused: the sampler never converts the net) and fp32 with another
    seed on the same cached loader output; that last run gives exactly what a fresh copy of the file gives.

    The other seed makes the sampler run again on hosts that keep every earlier result (0.28.2's RAM-pressure
    cache would hand back the first run's latents for the same inputs)."""
    used, fresh_name = "precision_probe.safetensors", "precision_fresh.safetensors"  # files no other test loads
    for name in (used, fresh_name):
        shutil.copy(models_dir / "singer" / singer_models["ckpt_name"], models_dir / "singer" / name)

    prompt, ids = _sampling_prompt(singer_models, used, dtype="fp32", steps=1, prefix="latents/first")
    first = run_prompt(prompt, timeout=600)
    assert first.status == "success", first.error
    assert ids["loader"] not in _cached_nodes(first)

    half, _ = _sampling_prompt(singer_models, used, dtype="fp16", steps=1, prefix="latents/half")
    refused = run_prompt(half, timeout=600)
    assert refused.status == "error" and refused.error.node_type == "SingerSampler"
    assert refused.error.exception_type.endswith("InputError")
    assert "loaded in fp32 but this run asks to compute in fp16" in refused.error.message
    assert ids["loader"] in _cached_nodes(refused)

    outcomes = []
    for name, prefix in ((used, "latents/again"), (fresh_name, "latents/fresh")):
        again, _ = _sampling_prompt(singer_models, name, dtype="fp32", steps=1, prefix=prefix, seed=43)
        outcomes.append(run_prompt(again, timeout=600))
        assert outcomes[-1].status == "success", outcomes[-1].error
        assert ids["sampler"] not in _cached_nodes(outcomes[-1])
    again, fresh = outcomes
    assert ids["loader"] in _cached_nodes(again) and ids["loader"] not in _cached_nodes(fresh)
    assert torch.equal(_saved_latents(comfy_server, again, ids["save"]),
                       _saved_latents(comfy_server, fresh, ids["save"]))


def _loaded_kinds(comfy_server) -> list[str]:
    return [model["kind"] for model in comfy_server.get("/singer_test/loaded_models")]


def test_models_are_registered_with_comfy_and_free_unloads_them(comfy_server, singer_models, input_dir,
                                                                run_prompt):
    prompt, _ = _sampling_prompt(singer_models, singer_models["ckpt_name"], steps=1, prefix="latents/free")
    outcome = run_prompt(prompt, timeout=600)
    assert outcome.status == "success", outcome.error
    kinds = _loaded_kinds(comfy_server)
    assert "SINGER net" in kinds and "wav2vec2 encoder" in kinds, kinds

    comfy_server.post("/free", {"unload_models": True})
    # ComfyUI's prompt worker reads the /free flags when it wakes up, between queue items; a notify that
    # arrives while it is busy finishing the last prompt is missed until its next wake-up (up to 1000 s).
    # A tiny core prompt wakes it deterministically.
    wake = Prompt()
    wake.add("PreviewImage", images=Prompt.out(wake.add("EmptyImage", width=8, height=8, batch_size=1, color=0)))
    assert run_prompt(wake).status == "success"
    deadline = time.monotonic() + 30
    while {"SINGER net", "wav2vec2 encoder"} & set(_loaded_kinds(comfy_server)):
        assert time.monotonic() < deadline, _loaded_kinds(comfy_server)
        time.sleep(0.2)


def test_previews_arrive_while_sampling(comfy_server, singer_models, input_dir):
    prompt, ids = _sampling_prompt(singer_models, singer_models["ckpt_name"], steps=3, prefix="latents/preview")
    with ServerEvents(comfy_server) as events:
        outcome = comfy_server.wait(events.submit(prompt.api()), timeout=600)
        time.sleep(0.5)  # the last messages
    assert outcome.status == "success", outcome.error
    previews = [frame for frame in events.binary if struct.unpack(">I", frame[:4])[0] in PREVIEW_EVENTS]
    assert len(previews) >= 3 * 4 - 1, len(previews)  # 4 clips x 3 steps (the bar may coalesce the last)
    assert all(JPEG_START in frame[:512] for frame in previews)


@pytest.mark.parametrize(
    ("node_type", "inputs", "value"),
    [
        ("SingerFaceAnalyzerLoader", {"model_pack": "/tmp"}, "/tmp"),
        ("SingerFaceAnalyzerLoader", {"model_pack": "../../../tmp"}, "../../../tmp"),
        ("SingerFaceAnalyzerLoader", {"model_pack": "antelopev2/../antelopev2"}, "antelopev2/../antelopev2"),
        ("SingerCheckpointLoader", {"ckpt_name": "../singer/tiny_singer.safetensors", "precision": "auto"},
         "../singer"),
        ("SingerAudioEncoderLoader", {"wav2vec_name": "/etc/hostname"}, "/etc/hostname"),
        ("SingerVocalSeparatorLoader", {"model_name": "../insightface/models/antelopev2/2d106det.onnx"}, "2d106det"),
    ],
)
def test_model_choices_outside_the_lists_are_refused(comfy_server, singer_models, host_checks_combos, node_type,
                                                     inputs, value):
    prompt = Prompt()
    loader = prompt.add(node_type, **inputs)
    prompt.add("PreviewAny", source=Prompt.out(loader))
    name = next(key for key in inputs if key != "precision")
    refusal = run_refused(comfy_server, prompt)
    if refused_by_the_node(refusal, host_checks_combos, node_type, name, value):
        assert refusal.exception_type.endswith("ModelFileMissingError")
        assert value in refusal.message and "pick" in refusal.message


@ON_0_3_75_ONLY  # the pack's own guidance branch
def test_cfg_one_runs_without_guidance(comfy_server, singer_models, input_dir, run_prompt):
    """cfg 1.0 is offered on the node: the official no-CFG branch (the conditional half only)."""
    guided, ids = _sampling_prompt(singer_models, singer_models["ckpt_name"], steps=1, prefix="latents/cfg35")
    plain, _ = _sampling_prompt(singer_models, singer_models["ckpt_name"], steps=1, prefix="latents/cfg1", cfg=1.0)
    with_cfg, without = run_prompt(guided, timeout=600), run_prompt(plain, timeout=600)
    assert with_cfg.status == "success" and without.status == "success", (with_cfg.error, without.error)
    a, b = _saved_latents(comfy_server, with_cfg, ids["save"]), _saved_latents(comfy_server, without, ids["save"])
    assert a.shape == b.shape and not torch.equal(a, b)
