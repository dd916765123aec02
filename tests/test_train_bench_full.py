"""``benchmarks/bench_train.py --full``: each configuration's child runs under the address-space cap, so one
that does not fit reports an error line instead of taking the machine's memory; one that fits trains through the
trainer's own pieces (bf16 autocast, the official 8-bit AdamW) and reports its step. Full-size figures:
docs/training.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_full_mode_child_runs_under_the_cap_and_reports_its_failure():
    # without the cap this configuration trains and reports a ``cpu_step_full`` line
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_train.py"), "--full", "--arch", "tiny", "--sizes", "64",
           "--frames", "2", "--steps", "1", "--limit-gb", "0.5"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    row = json.loads(run.stdout.splitlines()[-1])
    assert row["kind"] == "error" and row["returncode"] != 0, row
    assert (row["net"], row["size"], row["frames"], row["limit_gb"]) == ("tiny", 64, 2, 0.5)


def test_full_mode_child_trains_the_tiny_net_in_bf16_with_8bit_adamw():
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_train.py"), "--full", "--arch", "tiny", "--sizes", "64",
           "--frames", "2", "--steps", "1"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    row = json.loads(run.stdout.splitlines()[-1])
    assert row["kind"] == "cpu_step_full", row
    assert (row["frozen_dtype"], row["autocast"], row["bank_dtype"]) == ("bfloat16", "bfloat16", "float16")
    assert row["optimizer"] == "bitsandbytes AdamW8bit" and row["loss_finite"] and row["peak_rss_mb"] > 0
