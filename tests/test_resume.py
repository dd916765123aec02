"""Resumable renders (``singer_core.pipeline.resume``): an interrupted render goes on from its last finished
clip and gives the same video as an uninterrupted one; damaged state is redone; changed inputs never mix.

The library tests interrupt with the cancel hook (in process, tiny net, 64 px); the command-line test kills
``python -m singer_core generate`` with SIGKILL at a clip picked from a seed, runs it again and compares the
decoded frames and the audio with an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from singer_core.errors import CancelledError, ResumeMismatchError
from singer_core.pipeline import iter_clips
from singer_core.pipeline.progress import ClipClock, Progress
from singer_core.pipeline.resume import MANIFEST, RESTART, RenderState, render_key
from singer_core.video_io import frames_to_uint8
from tests.test_pipeline_generate import RecordingCodec, io, net, small_options, small_reference, song  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
FRAMES = 10  # clips of 4: 3 clips (overlap 1: stride 3, also 3 clips)


def _render(net, io, folder: Path, options, output: str, stop_after: int | None = None, key=None, **state_args):  # noqa: F811
    """Run a render kept in ``folder``; with ``stop_after``, cancel once that many clips are finished.
    Returns (the pieces, the state) or raises CancelledError."""
    reference, audio = small_reference(io), song(FRAMES)
    key = key or render_key(reference, audio, options, output, "cpu", {"net": "tiny test net"})
    state, finished = RenderState(folder, key, **state_args), []

    def on_progress(event: Progress) -> None:
        if event.kind == "clip":
            finished.append(event.clip)

    cancel = None if stop_after is None else (lambda: len(finished) >= stop_after)
    stream = iter_clips(net, RecordingCodec(), reference, audio, options, on_progress=on_progress,
                        should_cancel=cancel, output=output, resume=state)  # fmt: skip
    pieces = [piece.clone() for piece in stream]
    return pieces, state, finished


CASES = [
    pytest.param("frames", {}, id="frames"),
    pytest.param("latents", {"motion_source": "latent"}, id="latents-latent-motion"),
    pytest.param("frames", {"overlap": 1, "color_match": True, "scheduler": "dpmpp"}, id="frames-overlap"),
]


@pytest.mark.parametrize(("output", "extra"), CASES)
def test_an_interrupted_render_resumes_to_the_same_result(net, io, tmp_path, output, extra):  # noqa: F811
    options = small_options(steps=1, **extra)
    plain = list(iter_clips(net, RecordingCodec(), small_reference(io), song(FRAMES), options, output=output))
    whole, state, _ = _render(net, io, tmp_path / "whole", options, output)
    expected = [frames_to_uint8(p) for p in plain] if output == "frames" else plain
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(whole, expected, strict=True))
    assert not state.folder.exists() or json.loads((state.folder / MANIFEST).read_text())["done"] == state.clips

    stop = random.Random(18).randint(1, 2)
    print(f"interrupting after clip {stop}")
    with pytest.raises(CancelledError):
        _render(net, io, tmp_path / "cut", options, output, stop_after=stop)
    resumed, state, finished = _render(net, io, tmp_path / "cut", options, output)
    assert state.resume_at == stop and finished == list(range(stop, state.clips))  # the remaining clips alone
    assert len(resumed) == len(whole)
    assert all(torch.equal(a, b) for a, b in zip(resumed, whole, strict=True))  # bit for bit


def test_a_damaged_last_clip_is_redone_and_nothing_else_is_lost(net, io, tmp_path):  # noqa: F811
    options = small_options(steps=1)
    whole, _, _ = _render(net, io, tmp_path / "whole", options, "frames")
    with pytest.raises(CancelledError):
        _render(net, io, tmp_path / "cut", options, "frames", stop_after=2)
    last = tmp_path / "cut" / "clip_00001.safetensors"
    damaged = bytearray(last.read_bytes())
    damaged[-1] ^= 0xFF
    last.write_bytes(bytes(damaged))
    (tmp_path / "cut" / "clip_00002.safetensors").write_bytes(b"half-written clip")  # not in the manifest
    resumed, state, finished = _render(net, io, tmp_path / "cut", options, "frames")
    assert state.resume_at == 1 and finished == [1, 2]
    assert any("clip 2 is damaged" in note for note in state.notes), state.notes
    assert all(torch.equal(a, b) for a, b in zip(resumed, whole, strict=True))


def test_a_changed_option_is_refused_or_started_over_never_mixed(net, io, tmp_path):  # noqa: F811
    options = small_options(steps=1)
    with pytest.raises(CancelledError):
        _render(net, io, tmp_path / "cut", options, "frames", stop_after=1)
    other = small_options(steps=1, seed=7)
    with pytest.raises(ResumeMismatchError, match=r"\(seed changed\).*--fresh"):
        _render(net, io, tmp_path / "cut", other, "frames")
    restarted, state, finished = _render(net, io, tmp_path / "cut", other, "frames", on_change=RESTART)
    assert state.resume_at == 0 and finished == [0, 1, 2] and "seed changed" in state.notes[0]
    fresh, _, _ = _render(net, io, tmp_path / "fresh", other, "frames")
    assert all(torch.equal(a, b) for a, b in zip(restarted, fresh, strict=True))


def test_the_eta_comes_from_the_clips_done_in_this_run():
    now = [0.0]
    clock = ClipClock(now=lambda: now[0])
    clock.text(Progress("resume", 6, 10, 0, 4))  # 6 clips restored: they took no time here
    assert "ETA after the first clip" in clock.text(Progress("step", 6, 10, 1, 4))
    now[0] = 30.0
    assert clock.text(Progress("clip", 6, 10, 4, 4)) == "clip 7/10 done, elapsed 0:30, ETA 1:30"
    now[0] = 40.0
    assert clock.text(Progress("step", 7, 10, 1, 4)).endswith("elapsed 0:40, ETA 1:20")


# -- the command line ---------------------------------------------------------------------------------------------


def _cli(models: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "singer_core", "generate", "--image", str(DATA / "0001.png"), "--audio",
            str(DATA / "0001.wav"), "--out", str(out), "--models", str(models), "--size", "64", "--steps", "1",
            "--clip-length", "16", "--device", "cpu", *extra]  # fmt: skip


def _decoded(path: Path) -> tuple[list[str], np.ndarray]:
    """sha256 of every decoded video frame, and the decoded audio samples."""
    with av.open(str(path)) as container:
        frames = [hashlib.sha256(f.to_ndarray(format="rgb24").tobytes()).hexdigest()
                  for f in container.decode(video=0)]  # fmt: skip
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    return frames, audio


def _done(folder: Path) -> int:
    try:
        return json.loads((folder / MANIFEST).read_text())["done"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    from tests.tiny_models.models_dir import write_tiny_cli_models

    return write_tiny_cli_models(tmp_path_factory.mktemp("models"))


def test_the_command_line_survives_sigkill_and_makes_the_same_video(models, tmp_path):
    """0001.wav: 51 frames, 4 clips of 16. Killed (SIGKILL) after clip K, run again: the same video."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    whole = tmp_path / "whole.mp4"
    subprocess.run(_cli(models, whole), cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    kill_after = random.Random(1802).randint(1, 2)
    print(f"killing the render with SIGKILL once clip {kill_after} of 4 is saved")
    out = tmp_path / "cut.mp4"
    folder = out.with_name(out.name + ".singer-resume")
    process = subprocess.Popen(_cli(models, out), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while _done(folder) < kill_after and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    saved = _done(folder)
    print(f"killed with {saved} clips saved")
    assert process.returncode == -signal.SIGKILL and kill_after <= saved < 4 and not out.exists()

    changed = subprocess.run(_cli(models, out, "--seed", "5"), cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert changed.returncode == 2 and "(seed changed)" in changed.stderr and "--fresh" in changed.stderr
    assert _done(folder) == saved  # the refused run touched nothing

    again = subprocess.run(_cli(models, out), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming at clip {saved + 1}/4: skipped {saved} clips already done" in again.stdout
    assert [line.split(" done")[0] for line in again.stdout.splitlines() if " done, elapsed " in line] == [
        f"generating: clip {k}/4" for k in range(saved + 1, 5)]  # the remaining clips alone  # fmt: skip
    assert "ETA" in again.stdout and not folder.exists()
    frames, audio = _decoded(out)
    expected_frames, expected_audio = _decoded(whole)
    assert len(frames) == 51 and frames == expected_frames
    assert np.array_equal(audio, expected_audio)


def test_a_batch_row_goes_on_from_the_same_state(models, tmp_path, capsys):
    """A row's state is the command line's (the same folder and key): a render of the row's output killed by
    SIGKILL is finished by the batch, with the frames of an uninterrupted batch (its summary's digest)."""
    from singer_core.__main__ import main
    from tests.test_batch import write_csv, write_excerpt

    shutil.copy(DATA / "0001.png", tmp_path / "face.png")
    write_excerpt(tmp_path / "song.wav", 0.0, 1.2)  # 30 frames: 4 clips of 8
    jobs = write_csv(tmp_path / "jobs.csv", ["image", "audio", "name"], [["face.png", "song.wav", "row"]])
    fast = ["--size", "64", "--steps", "1", "--clip-length", "8", "--device", "cpu"]
    assert main(["batch", str(jobs), "--out", str(tmp_path / "whole"), "--models", str(models), *fast]) == 0
    expected = json.loads((tmp_path / "whole" / "summary.json").read_text())["rows"][0]["frames_sha256"]

    out = tmp_path / "cut" / "row.mp4"
    folder = out.with_name(out.name + ".singer-resume")
    command = [sys.executable, "-m", "singer_core", "generate", "--image", str(tmp_path / "face.png"), "--audio",
               str(tmp_path / "song.wav"), "--out", str(out), "--models", str(models), *fast]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while _done(folder) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    saved = _done(folder)
    assert 1 <= saved < 4, saved
    capsys.readouterr()
    assert main(["batch", str(jobs), "--out", str(tmp_path / "cut"), "--models", str(models), *fast]) == 0
    assert f"row: resuming at clip {saved + 1}/4: skipped {saved} clips already done" in capsys.readouterr().out
    row = json.loads((tmp_path / "cut" / "summary.json").read_text())["rows"][0]
    assert row["status"] == "done" and row["frames"] == 30 and row["frames_sha256"] == expected
    assert not folder.exists()


def test_a_render_that_cannot_fit_on_the_disk_is_refused_up_front(tmp_path):
    import shutil

    from singer_core.errors import RenderSpaceError
    from singer_core.pipeline.session import check_render_space

    check_render_space(tmp_path, 100, 64, 64)  # 1.2 MB: fits
    frames = shutil.disk_usage(tmp_path).free // (512 * 512 * 3) + 1000  # more than the disk holds
    with pytest.raises(RenderSpaceError, match=r"512x512x3 bytes per frame.*GB still needed.*--out to another disk"):
        check_render_space(tmp_path, frames, 512, 512)
