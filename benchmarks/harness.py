"""What the module benchmarks (ours and the official code's) share: the timing options, process
memory readings, and running each module in a fresh interpreter (Linux ``ru_maxrss`` only ever
grows within a process, so that is what makes per-module peaks separable). Plain Python: it is
imported under both interpreters."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys


def rss_mb() -> float:
    """Current resident set size of this process (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def add_timing_arguments(parser: argparse.ArgumentParser, modules: tuple[str, ...]) -> None:
    parser.add_argument("--resolution", type=int, default=512, help="square image size (multiple of 64)")
    parser.add_argument("--frames", type=int, default=2, help="generated frames per call (official 16)")
    parser.add_argument("--modules", default=",".join(modules), help=f"comma-separated subset of {modules}")
    parser.add_argument("--repeat", type=int, default=1, help="timed calls per module (the fastest is reported)")
    parser.add_argument("--warmup", action="store_true", help="one untimed call first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=modules, help=argparse.SUPPRESS)


def check_modules(parser: argparse.ArgumentParser, args: argparse.Namespace, modules: tuple[str, ...]) -> None:
    unknown = set(args.modules.split(",")) - set(modules)
    if unknown:
        parser.error(f"unknown modules {sorted(unknown)}; choose from {modules}")


def run_isolated(script: str, module: str, args: argparse.Namespace, extra: list[str], **error_fields) -> dict:
    """``script --worker module`` with the timing options and ``extra`` in a fresh interpreter; its
    JSON line (or the last line of its error) is returned and printed."""
    command = [sys.executable, script, "--worker", module, "--resolution", str(args.resolution), "--frames",
               str(args.frames), "--repeat", str(args.repeat), "--threads", str(args.threads), *extra]  # fmt: skip
    if args.warmup:
        command.append("--warmup")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        row = {"module": module, **error_fields, "error": error}
    else:
        row = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def run_modules(args: argparse.Namespace, measure, isolate) -> list[dict]:
    """In a worker, ``measure`` its module and print the row; otherwise ``isolate`` each module."""
    if args.worker:
        row = measure(args.worker, args)
        print(json.dumps(row), flush=True)
        return [row]
    return [isolate(module, args) for module in args.modules.split(",")]


def timing_fields(first: float | None, times: list[float], cpu_times: list[float]) -> dict:
    """The timing part of a result row: fastest call, every call, its CPU time, the warm-up call, the load."""
    return {
        "seconds": round(min(times), 4),
        "seconds_all": [round(t, 4) for t in times],
        "cpu_seconds": round(min(cpu_times), 4),
        "first_call_s": None if first is None else round(first, 4),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
