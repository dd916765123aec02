"""Resumable renders: the disk the render state takes and the memory of a render that keeps it, for a song.

    python benchmarks/bench_resume.py --seconds 120 --resolution 64

Runs ``python -m singer_core generate`` on the test suite's tiny models (1 step) on the example song repeated to
``--seconds``: once uninterrupted, then once killed (SIGKILL) half-way and run again. Reports, as JSON lines, each
run's peak RSS (``wait4`` on the command line alone, see ``bench_pipeline._child``), its wall time, the largest
size the state folder (``OUT.singer-resume/``) reached while it ran (polled every 0.2 s) and its size per frame of
song, and the resumed run's "skipped" line. The state's size is what ``singer_core.pipeline.resume`` stores:
uint8 frames (W x H x 3 bytes per frame of song) plus a fixed carry; the run checks that against the formula.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_pipeline import _LAUNCHER, write_song, write_tiny_models  # noqa: E402

from singer_core.pipeline.resume import MANIFEST, size_on_disk  # noqa: E402


class FolderWatch:
    """The largest size a folder reaches while a block runs (polled in a thread)."""

    def __init__(self, folder: Path, every: float = 0.2) -> None:
        self.folder, self.every, self.peak, self._stop = folder, every, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, size_on_disk(self.folder))
            except OSError:  # a file renamed or removed while being listed
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> FolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measured_run(command: list[str], env: dict, folder: Path) -> dict:
    """Run ``command`` to its end through the launcher; its peak RSS, wall time, the state folder's peak size."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, FolderWatch(folder) as watch:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", _LAUNCHER, *command], cwd=REPO, env=env, stdout=out, stderr=err)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    marker = [line.split() for line in stderr.splitlines() if line.startswith("__child_peak_kb__")]
    if not marker or marker[-1][2] != "0":
        raise SystemExit(f"the command line failed:\n{stderr[-3000:]}")
    skipped = [line for line in stdout.splitlines() if "skipped" in line]
    return {"peak_rss_mb": round(int(marker[-1][1]) / 1024, 1), "wall_s": round(wall, 1),
            "state_peak_bytes": watch.peak, "skipped_line": skipped[0] if skipped else "",
            "state_removed": not folder.exists()}  # fmt: skip


def killed_half_way(command: list[str], env: dict, folder: Path, clips: int) -> int:
    """Start ``command``, SIGKILL it once half the clips are saved; returns the clips saved."""
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = 0
    while done < clips // 2 and process.poll() is None:
        time.sleep(0.05)
        try:
            done = json.loads((folder / MANIFEST).read_text())["done"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    return json.loads((folder / MANIFEST).read_text())["done"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--clip-length", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", default="whole,resumed", help="which runs: whole, resumed or both")
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    fps = 25
    frames = int(-(-args.seconds * fps // 1))
    clips = -(-frames // args.clip_length)
    with tempfile.TemporaryDirectory(prefix="singer-resume-bench-") as tmp:
        tmp = Path(tmp)
        models = write_tiny_models(tmp / "models")
        song = write_song(tmp / "song.wav", args.seconds)
        for name in args.runs.split(","):
            out = tmp / f"{name}.mp4"
            folder = out.with_name(out.name + ".singer-resume")
            command = [sys.executable, "-m", "singer_core", "generate", "--image", str(REPO / "tests" / "data" /
                       "0001.png"), "--audio", str(song), "--out", str(out), "--models", str(models), "--size",
                       str(args.resolution), "--steps", "1", "--clip-length", str(args.clip_length),
                       "--device", "cpu"]  # fmt: skip
            saved = killed_half_way(command, env, folder, clips) if name == "resumed" else 0
            row = {"benchmark": "resume", "run": name, "song_seconds": args.seconds, "frames": frames,
                   "clips": clips, "resolution": args.resolution, "clips_saved_before": saved,
                   **measured_run(command, env, folder)}  # fmt: skip
            pixels = args.resolution * args.resolution * 3
            row["state_bytes_per_frame"] = round(row["state_peak_bytes"] / frames, 1)
            row["uint8_frame_bytes"] = pixels
            row["state_bytes_per_minute"] = round(row["state_peak_bytes"] / args.seconds * 60)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
