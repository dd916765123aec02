"""The sampler's render kept on disk, through a real ComfyUI server: Cancel during a clip (and a server restart),
queue the same graph again, and only the remaining clips are computed, with bit-identical latents."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.host.events import ServerEvents
from tests.host.test_singer_workflow import _fast_workflow, _id

pytestmark = pytest.mark.host

STEPS = 3
CLIPS = 4  # 0001.wav: 51 frames, clips of 16
RESUMING = re.compile(r"resuming at clip (\d+)/(\d+): (\d+) clips restored from (\S+), (\d+) to compute")


def _latent_workflow(comfy_server, singer_models, seed: int, resume: bool, prefix: str) -> dict:
    """The shipped workflow up to the sampler, whose latents a SaveLatent node writes to output/."""
    prompt = _fast_workflow(comfy_server, singer_models, steps=STEPS, seed=seed)
    sampler = _id(prompt, "SingerSampler")
    needed, todo = set(), [sampler]
    while todo:  # the sampler and what it is computed from
        node = todo.pop()
        if node not in needed:
            needed.add(node)
            todo += [value[0] for value in prompt[node]["inputs"].values() if isinstance(value, list)]
    prompt = {k: v for k, v in prompt.items() if k in needed}
    prompt[sampler]["inputs"]["resume"] = resume
    prompt["900"] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0], "filename_prefix": prefix}}
    return prompt


def _latents(comfy_server, prefix: str):
    (path,) = sorted((comfy_server.base_dir / "output").rglob(f"{prefix}_*.latent"))
    return load_file(path)["latent_tensor"]


def _cancel_during_a_later_clip(comfy_server, prompt: dict) -> None:
    """Queue ``prompt`` and press Cancel once its second clip is being denoised."""
    sampler = _id(prompt, "SingerSampler")
    with ServerEvents(comfy_server) as events:
        prompt_id = events.submit(prompt)
        deadline = time.monotonic() + 300
        while not any(value > STEPS for value, _ in events.progress(sampler)):  # clip 2, step 1 done
            assert comfy_server.alive() and time.monotonic() < deadline
            time.sleep(0.02)
        comfy_server.interrupt()
        assert comfy_server.wait(prompt_id, timeout=300).status == "interrupted"


def _resume(comfy_server, prompt: dict, log_before: int) -> tuple[int, Path, list[tuple[int, int]]]:
    """Queue ``prompt`` again; returns (clips restored, the state folder, the progress events)."""
    sampler = _id(prompt, "SingerSampler")
    with ServerEvents(comfy_server) as events:
        outcome = comfy_server.wait(events.submit(prompt), timeout=600)
    assert outcome.status == "success", outcome.history["status"]
    match = RESUMING.search(comfy_server.log_text()[log_before:])
    assert match, comfy_server.log_text()[log_before:][-4000:]
    restored = int(match[3])
    assert int(match[2]) == CLIPS and 1 <= restored < CLIPS and int(match[5]) == CLIPS - restored
    return restored, Path(match[4]), events.progress(sampler)


def _check_only_the_rest_was_computed(restored: int, progress: list[tuple[int, int]], folder: Path) -> None:
    values = [value for value, _ in progress]
    assert values and min(values) >= restored * STEPS and max(values) == CLIPS * STEPS, values
    assert {total for _, total in progress} == {CLIPS * STEPS}  # the bar covers the whole song
    assert not folder.exists()  # the finished render's state is removed


def test_cancel_then_queue_again_computes_only_the_remaining_clips(comfy_server, singer_models, input_dir):
    reference = comfy_server.run(_latent_workflow(comfy_server, singer_models, 21, False, "resume_ref"), timeout=600)
    assert reference.status == "success"
    prompt = _latent_workflow(comfy_server, singer_models, 21, True, "resume_cut")
    _cancel_during_a_later_clip(comfy_server, prompt)
    restored, folder, progress = _resume(comfy_server, prompt, len(comfy_server.log_text()))
    print(f"cancelled during clip {restored + 1}; {restored} clips restored")
    _check_only_the_rest_was_computed(restored, progress, folder)
    expected, resumed = _latents(comfy_server, "resume_ref"), _latents(comfy_server, "resume_cut")
    assert resumed.shape[0] == 51 and resumed.dtype == expected.dtype
    assert resumed.equal(expected)  # bit for bit


def test_a_server_restart_in_between_loses_nothing(comfy_server, singer_models, input_dir):
    reference = comfy_server.run(_latent_workflow(comfy_server, singer_models, 22, False, "restart_ref"), timeout=600)
    assert reference.status == "success"
    prompt = _latent_workflow(comfy_server, singer_models, 22, True, "restart_cut")
    _cancel_during_a_later_clip(comfy_server, prompt)
    states = comfy_server.base_dir / "user" / "singer_resume"
    kept = sorted(p.name for p in states.iterdir())
    comfy_server.stop()
    comfy_server.start(timeout=240)  # ComfyUI empties its temp folder here; the state is elsewhere
    assert sorted(p.name for p in states.iterdir()) == kept
    restored, folder, progress = _resume(comfy_server, prompt, 0)
    print(f"restarted; {restored} clips restored")
    _check_only_the_rest_was_computed(restored, progress, folder)
    assert _latents(comfy_server, "restart_cut").equal(_latents(comfy_server, "restart_ref"))


def test_clear_resume_state_removes_kept_renders_by_age(comfy_server):
    """'SINGER Clear Resume State' deletes the kept renders older than its threshold, and only those."""
    import os

    states = comfy_server.base_dir / "user" / "singer_resume"
    old, new = states / "old_render", states / "new_render"
    for folder in (old, new):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "clip_0000.bin").write_bytes(b"\0" * 4096)
    three_days_ago = time.time() - 3 * 86400
    os.utime(old / "clip_0000.bin", (three_days_ago, three_days_ago))

    def clear(days: float):
        prompt = {"1": {"class_type": "SingerClearResumeState", "inputs": {"older_than_days": days}}}
        outcome = comfy_server.run(prompt, timeout=120)
        assert outcome.status == "success", outcome.history["status"]
        return outcome

    report = str(clear(1.0).history.get("outputs"))
    assert not old.exists() and new.exists(), report  # only the render untouched for more than a day
    report = str(clear(0.0).history.get("outputs"))
    assert not any(states.iterdir()), report  # every kept render (earlier tests' leftovers too)
    removed = re.search(r"Removed (\d+) kept render", report)
    assert removed and int(removed[1]) >= 1, report
