"""``python -m singer_core batch``: CSV validation, resumability, failed rows, and rows sharded over processes.

Tiny models written to a temporary models folder (as in test_cli.py); songs of 8 and 5 frames (one clip of 8).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from singer_core.__main__ import _parser, main
from singer_core.audio.waveform import read_audio_file
from singer_core.batch import COMMAND_LINE_ONLY, read_jobs, row_columns
from tests.tiny_models.models_dir import write_tiny_cli_models

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
FAST = ("--size", "64", "--steps", "1", "--clip-length", "8")


def write_excerpt(path: Path, start: float, seconds: float) -> Path:
    """``seconds`` of the example song from ``start`` as a 16-bit stereo wav."""
    waveform, rate = read_audio_file(DATA / "0001.wav")
    pcm = (waveform[:, int(start * rate) : int((start + seconds) * rate)].clamp(-1, 1) * 32767).round().short()
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.numpy().T.reshape(1, -1)), format="s16",
                                           layout="stereo")  # fmt: skip
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return write_tiny_cli_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder with a face, two short songs and a file that is not an image; the CSVs go here too."""
    root = tmp_path_factory.mktemp("inputs")
    shutil.copy(DATA / "0001.png", root / "face.png")
    write_excerpt(root / "a.wav", 0.0, 0.32)  # 8 frames
    write_excerpt(root / "b.wav", 0.4, 0.2)  # 5 frames
    (root / "broken.png").write_text("not an image")
    Image.new("RGB", (300, 300), (200, 200, 200)).save(root / "blank.png")  # no face in it
    return root


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def batch_args(jobs: Path, out: Path, models: Path, *extra: str) -> list[str]:
    return ["batch", str(jobs), "--out", str(out), "--models", str(models), *FAST, *extra]


def summary(out: Path) -> dict[str, dict]:
    rows = json.loads((out / "summary.json").read_text())["rows"]
    with (out / "summary.csv").open() as handle:
        assert [r["name"] for r in csv.DictReader(handle)] == [r["name"] for r in rows]
    return {row["name"]: row for row in rows}


def generate_parser():
    parser = _parser()
    return parser._subparsers._group_actions[0].choices["generate"]


def test_columns_are_the_generate_options(inputs):
    """Every per-row generate option is a column (one definition: the generate parser), width/height come from
    GenerationOptions, and a row's cells override the command line's values."""
    generate = generate_parser()
    columns = row_columns(generate)
    expected = {a.dest for a in generate._actions if a.dest not in COMMAND_LINE_ONLY} | {"width", "height"}
    assert {c.name for c in columns.values()} == expected
    assert {"steps", "scheduler", "pose_weight", "no_vocal_separation"} <= expected
    header = ["image", "audio", "pose-weight", "scheduler", "width", "color_match", "cfg"]
    jobs = write_csv(inputs / "override.csv", header, [["face.png", "a.wav", "0.5", "dpmpp", "128", "yes", "2"],
                                                       ["face.png", "b.wav", "", "", "", "", ""]])
    args = _parser().parse_args(batch_args(jobs, inputs / "out", inputs, "--steps", "3", "--seed", "7"))
    first, second = read_jobs(jobs, args, args.generate_parser).jobs
    assert (first.options.pose_weight, first.options.scheduler, first.options.steps) == (0.5, "dpmpp", 3)
    assert (first.options.width, first.options.height, first.options.color_match) == (128, 64, True)
    assert (first.options.guidance, second.options.guidance) == (2.0, 3.5)  # --cfg is --guidance's other name
    assert (second.options.pose_weight, second.options.scheduler, second.options.seed) == (1.0, "ddim", 7)
    assert second.name == "face_b" and second.image == inputs / "face.png"  # relative to the CSV's folder


def test_bad_csv_is_reported_by_row_and_column_before_loading_models(inputs, tmp_path, capsys):
    unknown = write_csv(tmp_path / "unknown.csv", ["image", "audio", "stepz"], [["face.png", "a.wav", "2"]])
    assert main(batch_args(unknown, tmp_path / "out", tmp_path / "no-models")) == 2
    assert "column 'stepz' is not a job column or a generate option" in capsys.readouterr().err
    twice = write_csv(tmp_path / "twice.csv", ["image", "audio", "cfg", "guidance"], [["face.png", "a.wav", "2", "3"]])
    assert main(batch_args(twice, tmp_path / "out", tmp_path / "no-models")) == 2
    assert "column 'guidance' appears twice (or under two names)" in capsys.readouterr().err
    no_audio = write_csv(tmp_path / "no_audio.csv", ["image"], [["face.png"]])
    assert main(batch_args(no_audio, tmp_path / "out", tmp_path / "no-models")) == 2
    assert "required column 'audio' is missing" in capsys.readouterr().err
    bad = write_csv(tmp_path / "bad.csv", ["image", "audio", "name", "seed", "scheduler", "size"], [
        ["face.png", "a.wav", "x", "seven", "", ""],
        ["face.png", "a.wav", "y", "", "fast", ""],
        ["face.png", "a.wav", "z", "", "", "100"],
        ["", "a.wav", "w", "", "", ""],
        ["face.png", "a.wav", "v", "", "", ""],
        ["face.png", "b.wav", "v", "", "", ""],
    ])  # fmt: skip
    assert main(batch_args(bad, tmp_path / "out", tmp_path / "no-models")) == 2
    error = capsys.readouterr().err
    assert f"{bad} row 1, column 'seed': expected a whole number (got 'seven')" in error
    assert f"{bad} row 2, column 'scheduler': expected one of ddim, dpmpp, euler (got 'fast')" in error
    assert f"{bad} row 3 (size=100): width must be a positive multiple of 64 (got 100)" in error
    assert f"{bad} row 4, column 'image': empty" in error
    assert f"{bad} rows 5, 6: the same output name 'v'" in error
    assert not (tmp_path / "out").exists()


def test_failed_rows_are_summarised_and_a_second_run_resumes(models, inputs, tmp_path, capsys):
    jobs = write_csv(inputs / "jobs.csv", ["image", "audio", "name", "seed"], [
        ["face.png", "b.wav", "good", "3"],
        ["broken.png", "b.wav", "bad_image", ""],
        ["face.png", "missing.wav", "no_audio", ""],
        ["blank.png", "b.wav", "no_face", ""],
    ])  # fmt: skip
    out = tmp_path / "out"
    assert main(batch_args(jobs, out, models)) == 1  # a row failed
    rows = summary(out)
    assert [rows[n]["status"] for n in ("good", "bad_image", "no_audio", "no_face")] == ["done", *["failed"] * 3]
    assert "Cannot read the reference image" in rows["bad_image"]["error"]
    assert "broken.png" in rows["bad_image"]["error"]
    assert "missing.wav" in rows["no_audio"]["error"]
    assert rows["no_face"]["error"].startswith("No face was found in the reference image")
    assert rows["good"]["frames"] == 5 and len(rows["good"]["frames_sha256"]) == 64
    assert sorted(p.name for p in out.glob("*.mp4")) == ["good.mp4"]
    first = (out / "good.mp4").stat().st_mtime_ns

    capsys.readouterr()
    assert main(batch_args(jobs, out, models)) == 1
    skipped = summary(out)["good"]
    assert skipped["status"] == "skipped" and (out / "good.mp4").stat().st_mtime_ns == first
    assert (skipped["frames_sha256"], skipped["generate_seconds"]) == (rows["good"]["frames_sha256"],
                                                                        rows["good"]["generate_seconds"])

    # A command-line value the row overrides changes nothing; one it takes makes the video again.
    assert main(batch_args(jobs, out, models, "--seed", "5")) == 1
    assert summary(out)["good"]["status"] == "skipped"
    capsys.readouterr()
    assert main(batch_args(jobs, out, models, "--lip-weight", "0.5")) == 1
    assert "good: done" in capsys.readouterr().out
    remade = summary(out)["good"]
    assert remade["note"] == "remade: lip_weight changed since good.mp4 was made"
    assert remade["frames_sha256"] != rows["good"]["frames_sha256"]

    # An interrupted row leaves only its temporary file: the next run redoes the row and removes it.
    (out / "good.mp4").unlink()
    (out / ".good.tmp.mp4").write_bytes(b"half a video")
    assert main(batch_args(jobs, out, models)) == 1
    redone = summary(out)["good"]
    assert redone["status"] == "done" and redone["frames_sha256"] == rows["good"]["frames_sha256"]
    assert not (out / ".good.tmp.mp4").exists() and av.open(str(out / "good.mp4")).streams.video[0].frames == 5

    capsys.readouterr()
    assert main(batch_args(jobs, out, models, "--dry-run")) == 0
    printed = capsys.readouterr().out
    assert "row 1: good.mp4 (exists, will be skipped)" in printed and "row 4: no_face.mp4 (to generate)" in printed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_make_the_same_videos_as_one(models, inputs, tmp_path):
    """accelerate launch with 2 CPU processes (gloo): every row exactly once, the same videos and frames as one
    process. (accelerate's own --cpu multi-process launcher needs mpirun; its torchrun launcher is --multi_gpu.)"""
    jobs = write_csv(inputs / "shard.csv", ["image", "audio", "name", "seed"], [
        ["face.png", "b.wav", "r0", "1"],
        ["face.png", "a.wav", "r1", "2"],
        ["broken.png", "b.wav", "r2", ""],
    ])  # fmt: skip
    # one thread in every process: each row is then the same calls on the same shapes with the same kernels in
    # both runs, so the frames (and their digests) are equal bit for bit (docs/numerics.md)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run([sys.executable, "-m", "singer_core", *batch_args(jobs, one, models, "--device", "cpu")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert single.returncode == 1, single.stderr  # row r2 failed
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port()), "-m", "singer_core",
              *batch_args(jobs, two, models, "--device", "cpu")]  # fmt: skip
    sharded = subprocess.run(launch, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    # Under a launcher every rank exits 0 (a failing rank would make it kill the others); failures are in the summary.
    assert sharded.returncode == 0, sharded.stdout + sharded.stderr
    assert "[rank 1/2]" in sharded.stdout and "[rank 0/2]" in sharded.stdout
    rows_one, rows_two = summary(one), summary(two)
    assert sorted(p.name for p in one.glob("*.mp4")) == sorted(p.name for p in two.glob("*.mp4"))
    assert sorted(p.name for p in two.glob("*.mp4")) == ["r0.mp4", "r1.mp4"]
    assert {n: r["rank"] for n, r in rows_two.items()} == {"r0": 0, "r1": 1, "r2": 0}
    for name in ("r0", "r1"):
        assert rows_two[name]["status"] == rows_one[name]["status"] == "done"
        assert rows_two[name]["frames_sha256"] == rows_one[name]["frames_sha256"], name
    assert rows_two["r2"]["status"] == "failed" and rows_two["r2"]["error"] == rows_one["r2"]["error"]
    assert json.loads((two / "summary.json").read_text())["processes"] == 2


def test_shards_cover_every_row_once_and_the_last_rank_merges(tmp_path):
    import torch

    from singer_core.batch import JobPlan, RowResult, Shard, merge_summary

    plan = JobPlan(tmp_path / "jobs.csv", "digest", [])
    for count in (0, 1, 5, 12):
        plan.jobs = [type("J", (), {"index": i})() for i in range(count)]
        for world in (1, 2, 3, 5):
            shards = [[job.index for job in Shard(rank, world, torch.device("cpu")).take(plan.jobs)]
                      for rank in range(world)]  # fmt: skip
            assert sorted(i for shard in shards for i in shard) == list(range(count))
    plan.jobs = [type("J", (), {"index": i})() for i in range(3)]
    parts = tmp_path / ".batch"
    parts.mkdir()

    def write_part(rank: int, digest: str = "digest") -> None:
        rows = [RowResult(i, f"v{i}", "done", f"v{i}.mp4", rank).__dict__ for i in range(3) if i % 2 == rank]
        (parts / f"summary.rank{rank}-of-2.json").write_text(json.dumps({"sha256": digest, "rows": rows}))

    write_part(0)
    assert merge_summary(plan, tmp_path, 2) is None and not (tmp_path / "summary.json").exists()  # rank 1 runs
    write_part(1, digest="another CSV")
    assert merge_summary(plan, tmp_path, 2) is None  # a part left by a run of another CSV
    write_part(1)
    assert [row["index"] for row in merge_summary(plan, tmp_path, 2)] == [0, 1, 2]
    assert json.loads((tmp_path / "summary.json").read_text())["done"] == 3
