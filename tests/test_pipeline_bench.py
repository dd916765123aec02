"""The pipeline benchmark runs and reports every stage (tiny architecture, so it takes seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_reports_every_stage_as_json_lines():
    command = [sys.executable, "benchmarks/bench_pipeline.py", "--tiny", "--device", "cpu", "--resolution", "64",
               "--frames", "2", "--steps", "2", "--threads", "1"]  # fmt: skip
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [row["stage"] for row in rows] == [
        "audio", "face", "encode", "reference", "reference_next_clip", "step", "decode", "total"
    ]
    assert all(row["seconds"] > 0 and row["peak_mb"] > 0 and row["architecture"] == "tiny" for row in rows)
    step = rows[5]
    assert step["calls"] == 2 and abs(step["seconds_per_call"] * 2 - step["seconds"]) < 0.01
    total = rows[-1]
    one_clip = [row for row in rows[:-1] if row["stage"] != "reference_next_clip"]
    assert abs(total["seconds"] - sum(row["seconds"] for row in one_clip)) < 0.01
    assert abs(total["seconds_per_frame"] - total["seconds"] / 2) < 0.01
