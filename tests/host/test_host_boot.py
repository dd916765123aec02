"""The pack inside a real ComfyUI server: it loads, its nodes are listed, errors surface cleanly."""

from __future__ import annotations

import re

import pytest

from tests.host.events import ServerEvents
from tests.host.harness import ON_BOTH_HOSTS, Prompt, load_comfy_host, refused_by_the_node, run_refused

pytestmark = [pytest.mark.host, ON_BOTH_HOSTS]

PACK_MODULE = "custom_nodes.singer_comfyui"
PromptRejected = load_comfy_host().PromptRejected


def _pack_nodes(object_info: dict) -> dict:
    return {name: info for name, info in object_info.items() if info.get("python_module") == PACK_MODULE}


def test_pack_imports_without_errors(comfy_server):
    log = comfy_server.log_text()
    import_lines = [line for line in log.splitlines() if re.search(r"seconds.*custom_nodes/singer_comfyui$", line)]
    assert import_lines, "the pack is not in ComfyUI's custom-node import list"
    assert not any("IMPORT FAILED" in line for line in import_lines), import_lines
    failures = [
        line
        for line in log.splitlines()
        if "singer_comfyui" in line and ("Cannot import" in line or "Error while calling comfy_entrypoint" in line)
    ]
    assert not failures, failures


def test_pack_creates_no_model_folders(model_folders_at_start):
    # The pack registers its folders with ComfyUI but must not create them.
    assert not model_folders_at_start & {"singer", "wav2vec2", "insightface", "audio_separator"}


def test_pack_nodes_are_listed_under_singer_with_tooltips(comfy_server):
    nodes = _pack_nodes(comfy_server.object_info())
    assert "SingerCheckpointLoader" in nodes
    for name, info in nodes.items():
        assert info["category"].startswith("SINGER/"), (name, info["category"])
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"


def test_model_folders_list_files_written_after_start(comfy_server, models_dir):
    (models_dir / "singer").mkdir(exist_ok=True)
    (models_dir / "singer" / "listed.safetensors").write_bytes(b"x")
    (models_dir / "singer" / "notes.txt").write_text("not a checkpoint")
    info = comfy_server.get("/object_info/SingerCheckpointLoader")["SingerCheckpointLoader"]
    choices = info["input"]["required"]["ckpt_name"][1]["options"]
    assert "listed.safetensors" in choices
    assert "notes.txt" not in choices


def test_invalid_prompt_is_rejected_with_node_errors(comfy_server):
    prompt = Prompt()
    prompt.add("SingerCheckpointLoader", precision="auto")  # ckpt_name left out
    prompt.add("PreviewAny", source=Prompt.out("1"))
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.submit(prompt.api())
    assert "ckpt_name" in str(rejected.value.node_errors["1"])


def test_missing_checkpoint_file_is_reported(comfy_server, host_checks_combos):
    # ComfyUI 0.3.75 does not check V3 combo values against their options, so the node must.
    prompt = Prompt()
    loader = prompt.add("SingerCheckpointLoader", ckpt_name="no_such_file.safetensors", precision="auto")
    prompt.add("PreviewAny", source=Prompt.out(loader))
    refusal = run_refused(comfy_server, prompt)
    if refused_by_the_node(refusal, host_checks_combos, "SingerCheckpointLoader", "ckpt_name",
                           "no_such_file.safetensors"):
        assert refusal.exception_type.endswith("ModelFileMissingError")
        assert "no_such_file.safetensors" in refusal.message and "models/singer" in refusal.message


def test_unknown_precision_is_refused(comfy_server, models_dir, host_checks_combos):
    (models_dir / "singer").mkdir(exist_ok=True)
    (models_dir / "singer" / "any.safetensors").write_bytes(b"x")
    prompt = Prompt()
    loader = prompt.add("SingerCheckpointLoader", ckpt_name="any.safetensors", precision="fp8")
    prompt.add("PreviewAny", source=Prompt.out(loader))
    refusal = run_refused(comfy_server, prompt)
    if refused_by_the_node(refusal, host_checks_combos, "SingerCheckpointLoader", "precision", "fp8"):
        assert refusal.exception_type.endswith("InputError")
        assert "precision" in refusal.message and "fp8" in refusal.message


def test_core_prompt_runs(run_prompt):
    prompt = Prompt()
    image = prompt.add("EmptyImage", width=16, height=8, batch_size=1, color=0xFF0000)
    prompt.add("SaveImage", images=Prompt.out(image), filename_prefix="host_boot")
    outcome = run_prompt(prompt)
    assert outcome.status == "success", outcome.error
    images = [img for out in outcome.outputs.values() for img in out.get("images", [])]
    assert images and images[0]["filename"].startswith("host_boot")


def test_loader_error_is_reported_and_server_survives(comfy_server, models_dir, run_prompt):
    (models_dir / "singer").mkdir(exist_ok=True)
    (models_dir / "singer" / "broken.safetensors").write_bytes(b"this is not a checkpoint")
    prompt = Prompt()
    loader = prompt.add("SingerCheckpointLoader", ckpt_name="broken.safetensors", precision="auto")
    prompt.add("PreviewAny", source=Prompt.out(loader))
    outcome = run_prompt(prompt)

    assert outcome.status == "error"
    assert outcome.error.node_type == "SingerCheckpointLoader"
    assert outcome.error.exception_type.endswith("CheckpointError")
    assert "broken.safetensors" in outcome.error.message
    assert "SINGER" in outcome.error.message  # says which file is expected
    assert comfy_server.alive()
    assert run_prompt(_tiny_core_prompt()).status == "success"


def _tiny_core_prompt() -> Prompt:
    prompt = Prompt()
    image = prompt.add("EmptyImage", width=8, height=8, batch_size=1, color=0)
    prompt.add("PreviewImage", images=Prompt.out(image))
    return prompt


def test_interrupt_stops_a_running_prompt(comfy_server):
    prompt = Prompt()
    image = prompt.add("EmptyImage", width=512, height=512, batch_size=1, color=0x808080)
    first_blur = None
    for _ in range(40):  # long enough that it is still running when interrupted
        image = prompt.add("ImageBlur", image=Prompt.out(image), blur_radius=31, sigma=10.0)
        first_blur = first_blur or image
    prompt.add("PreviewImage", images=Prompt.out(image))
    with ServerEvents(comfy_server) as events:
        prompt_id = events.submit(prompt.api())
        events.wait_for_executing(first_blur)  # executing, not only queued
        comfy_server.interrupt()
        outcome = comfy_server.wait(prompt_id, timeout=60)
    assert outcome.status == "interrupted"
    assert comfy_server.alive()


def test_loader_loads_a_tiny_checkpoint(models_dir, run_prompt):
    from tests.tiny_models.net import write_tiny_singer_checkpoint

    write_tiny_singer_checkpoint(models_dir / "singer" / "tiny_singer.safetensors")
    prompt = Prompt()
    loader = prompt.add("SingerCheckpointLoader", ckpt_name="tiny_singer.safetensors", precision="bf16")
    preview = prompt.add("PreviewAny", source=Prompt.out(loader))
    outcome = run_prompt(prompt)

    assert outcome.status == "success", outcome.error
    (text,) = outcome.outputs[preview]["text"]
    assert text.startswith("SINGER net from tiny_singer.safetensors:"), text
    assert text.endswith("bfloat16"), text
