"""The shipped workflow, converted with the server's /object_info and run end to end on tiny models;
the library's errors and Cancel through the server."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import av
import pytest

from tests.host.events import ServerEvents
from tests.host.harness import ON_0_3_75_ONLY, ON_BOTH_HOSTS, Prompt, refused_by_the_node, run_refused
from tests.host.workflow_api import workflow_to_api

pytestmark = [pytest.mark.host, ON_BOTH_HOSTS]

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "singer.json"
SIZE = 64
FPS = 25


def _set(prompt: dict, class_type: str, **inputs) -> str:
    """Overwrite widget values of the one node of ``class_type``; returns its id."""
    (node_id,) = [k for k, v in prompt.items() if v["class_type"] == class_type]
    for name, value in inputs.items():
        assert name in prompt[node_id]["inputs"], f"{class_type} has no input {name}"
        prompt[node_id]["inputs"][name] = value
    return node_id


def _id(prompt: dict, class_type: str) -> str:
    (node_id,) = [k for k, v in prompt.items() if v["class_type"] == class_type]
    return node_id


def _use_tiny_models(prompt: dict, singer_models: dict) -> None:
    """Point a shipped workflow's loaders at the tiny test models."""
    _set(prompt, "SingerCheckpointLoader", ckpt_name=singer_models["ckpt_name"])
    _set(prompt, "SingerAudioEncoderLoader", wav2vec_name=singer_models["wav2vec_name"])
    _set(prompt, "SingerFaceAnalyzerLoader", model_pack=singer_models["model_pack"])
    _set(prompt, "SingerVocalSeparatorLoader", model_name=singer_models["model_name"])
    _set(prompt, "VAELoader", vae_name=singer_models["vae_name"])


def _fast_workflow(comfy_server, singer_models, steps: int = 2, seed: int = 42) -> dict:
    """workflows/singer.json in the API format, pointed at the tiny models, 64x64, a few steps."""
    prompt = workflow_to_api(json.loads(WORKFLOW.read_text()), comfy_server.object_info())
    _use_tiny_models(prompt, singer_models)
    _set(prompt, "SingerReferenceEncode", width=SIZE, height=SIZE)
    _set(prompt, "SingerSampler", steps=steps, seed=seed, dtype="fp32")
    _set(prompt, "SaveVideo", filename_prefix=f"singer_test_{steps}_{seed}")
    return prompt


def _song_seconds(path: Path) -> float:
    with wave.open(str(path)) as song:
        return song.getnframes() / song.getframerate()


def _saved_video(comfy_server, outcome, save_id: str) -> Path:
    (saved,) = outcome.outputs[save_id]["images"]
    return comfy_server.base_dir / "output" / saved["subfolder"] / saved["filename"]


def test_shipped_workflow_runs_end_to_end(comfy_server, singer_models, input_dir, run_prompt):
    prompt = _fast_workflow(comfy_server, singer_models)
    outcome = run_prompt(prompt, timeout=600)
    assert outcome.status == "success", outcome.error

    video_path = _saved_video(comfy_server, outcome, _id(prompt, "SaveVideo"))
    expected_frames = _song_seconds(input_dir / "0001.wav") * FPS
    with av.open(str(video_path)) as container:
        (video,) = container.streams.video
        assert container.streams.audio, "the saved video has no audio stream"
        assert (video.codec_context.width, video.codec_context.height) == (SIZE, SIZE)
        assert float(video.average_rate) == FPS
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(frames - expected_frames) <= 1, (frames, expected_frames)


def _run_single_error(run_prompt, comfy_server, prompt: Prompt, node_type: str, exception: str):
    outcome = run_prompt(prompt)
    assert outcome.status == "error", outcome.status
    assert outcome.error.node_type == node_type
    assert outcome.error.exception_type.endswith(exception), outcome.error.exception_type
    assert comfy_server.alive()
    return outcome.error.message


def test_image_without_a_face_is_reported(comfy_server, singer_models, input_dir, run_prompt):
    prompt = Prompt()
    image = prompt.add("EmptyImage", width=128, height=128, batch_size=1, color=0x808080)
    vae = prompt.add("VAELoader", vae_name=singer_models["vae_name"])
    faces = prompt.add("SingerFaceAnalyzerLoader", model_pack=singer_models["model_pack"])
    ref = prompt.add("SingerReferenceEncode", image=Prompt.out(image), vae=Prompt.out(vae),
                     face_analyzer=Prompt.out(faces), width=64, height=64, face_expand_ratio=1.2, framing="face",
                     face_index=0)
    prompt.add("PreviewImage", images=Prompt.out(ref, 1))
    message = _run_single_error(run_prompt, comfy_server, prompt, "SingerReferenceEncode", "NoFaceError")
    assert "No face was found in the reference image" in message


def _write_wav(path: Path, samples: int, value: int = 0) -> str:
    with wave.open(str(path), "wb") as song:
        song.setnchannels(1)
        song.setsampwidth(2)
        song.setframerate(16000)
        song.writeframes(int(value).to_bytes(2, "little", signed=True) * samples)
    return path.name


def _audio_encode_prompt(singer_models, audio_file: str) -> Prompt:
    prompt = Prompt()
    audio = prompt.add("LoadAudio", audio=audio_file)
    encoder = prompt.add("SingerAudioEncoderLoader", wav2vec_name=singer_models["wav2vec_name"])
    encoded = prompt.add("SingerAudioEncode", audio_encoder=Prompt.out(encoder), audio=Prompt.out(audio),
                         clip_length=16)
    prompt.add("PreviewAny", source=Prompt.out(encoded))
    return prompt


def test_silent_audio_is_reported(comfy_server, singer_models, input_dir, run_prompt):
    prompt = _audio_encode_prompt(singer_models, _write_wav(input_dir / "silence.wav", 16000))
    message = _run_single_error(run_prompt, comfy_server, prompt, "SingerAudioEncode", "InputError")
    assert "silent" in message


def test_too_short_audio_is_reported(comfy_server, singer_models, input_dir, run_prompt):
    prompt = _audio_encode_prompt(singer_models, _write_wav(input_dir / "click.wav", 160, value=8000))  # 10 ms
    message = _run_single_error(run_prompt, comfy_server, prompt, "SingerAudioEncode", "AudioTooShortError")
    assert "shorter than one video frame" in message


@ON_0_3_75_ONLY  # the pack's own clip split; the host's part is in the workflow test
def test_the_sampler_follows_the_audio_encodes_clip_length(comfy_server, singer_models, input_dir):
    prompt = _fast_workflow(comfy_server, singer_models, steps=1, seed=9)
    _set(prompt, "SingerAudioEncode", clip_length=8)
    assert "clip_length" not in prompt[_id(prompt, "SingerSampler")]["inputs"]  # set once, on the audio encode
    with ServerEvents(comfy_server) as events:
        outcome = comfy_server.wait(events.submit(prompt), timeout=600)
    assert outcome.status == "success", outcome.error
    assert events.progress(_id(prompt, "SingerSampler"))[-1] == (7, 7)  # 51 frames -> 7 clips of 8, 1 step each


@pytest.mark.parametrize(
    ("node_type", "inputs", "words"),
    [
        ("SingerSampler", {"scheduler": "lms"}, ("scheduler", "lms", "ddim")),  # 0.3.75 does not check combos
        ("SingerSampler", {"dtype": "fp8"}, ("dtype", "fp8", "bf16")),
    ],
)
def test_bad_sampler_settings_are_reported(comfy_server, singer_models, input_dir, host_checks_combos, node_type,
                                           inputs, words):
    prompt = _fast_workflow(comfy_server, singer_models)
    _set(prompt, node_type, **inputs)
    ((name, value),) = inputs.items()
    refusal = run_refused(comfy_server, prompt)
    if refused_by_the_node(refusal, host_checks_combos, node_type, name, value):
        assert refusal.exception_type.endswith("InputError")
        assert all(word in refusal.message for word in words), refusal.message


def test_wrong_kind_of_checkpoint_is_reported(comfy_server, singer_models, models_dir, run_prompt):
    # A face-analysis ONNX file is not a checkpoint at all; the wav2vec2 weights are a checkpoint of another model.
    (models_dir / "singer" / "wav2vec_by_mistake.safetensors").write_bytes(
        (models_dir / "wav2vec2" / "tiny_wav2vec" / "model.safetensors").read_bytes()
    )
    prompt = Prompt()
    loader = prompt.add("SingerCheckpointLoader", ckpt_name="wav2vec_by_mistake.safetensors", precision="auto")
    prompt.add("PreviewAny", source=Prompt.out(loader))
    message = _run_single_error(run_prompt, comfy_server, prompt, "SingerCheckpointLoader", "CheckpointError")
    assert "wav2vec_by_mistake.safetensors is not a SINGER or Hallo net checkpoint" in message


@pytest.mark.parametrize(
    ("node_type", "inputs", "expected"),
    [
        ("SingerAudioEncoderLoader", {"wav2vec_name": "missing/model.safetensors"}, "models/wav2vec2"),
        ("SingerFaceAnalyzerLoader", {"model_pack": "buffalo_l"}, "antelopev2"),
        ("SingerVocalSeparatorLoader", {"model_name": "missing.onnx"}, "models/audio_separator"),
    ],
)
def test_missing_model_files_are_reported(comfy_server, singer_models, host_checks_combos, node_type, inputs,
                                         expected):
    prompt = Prompt()
    loader = prompt.add(node_type, **inputs)
    prompt.add("PreviewAny", source=Prompt.out(loader))
    ((name, value),) = inputs.items()
    refusal = run_refused(comfy_server, prompt)
    if refused_by_the_node(refusal, host_checks_combos, node_type, name, value):
        assert refusal.exception_type.endswith("ModelFileMissingError")
        assert expected in refusal.message


def test_cancel_during_sampling_then_the_next_prompt_runs(comfy_server, singer_models, input_dir, run_prompt):
    slow = _fast_workflow(comfy_server, singer_models, steps=200, seed=7)
    sampler = _id(slow, "SingerSampler")
    with ServerEvents(comfy_server) as events:
        prompt_id = events.submit(slow)
        events.wait_for_progress(sampler)  # the sampler is denoising
        comfy_server.interrupt()
        outcome = comfy_server.wait(prompt_id, timeout=120)
    assert outcome.status == "interrupted"
    interrupted = [data for kind, data in outcome.history["status"]["messages"] if kind == "execution_interrupted"]
    assert interrupted[0]["node_type"] == "SingerSampler"
    value, total = events.progress(sampler)[-1]
    assert total == 4 * 200 and value < total  # 51 frames -> 4 clips of 16, stopped early
    assert comfy_server.alive()
    assert run_prompt(_fast_workflow(comfy_server, singer_models, steps=1, seed=8), timeout=600).status == "success"
