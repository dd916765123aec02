"""Replay fixture cases against our implementation.

    python -m singer_core.conformance CASE.json [CASE.json ...]

A case is ``<name>.json`` beside ``<name>.io.safetensors`` (and the weight files it names).
The kind is detected from the JSON, every module is rebuilt from the JSON configs alone,
and the max abs error of every output is printed. Exit status 1 if any output is beyond
its tolerance (1e-5 modules and audio features, 1e-4 UNet outputs / latents / videos).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from singer_core.conformance import modules
from singer_core.conformance.common import Comparison

Runner = Callable[[dict, Path], list[Comparison]]


def _named(run: Callable[[dict, Path, str], list[Comparison]]) -> Runner:
    return lambda case, path: run(case, path.parent, path.name.removesuffix(".json"))


def _audio_runner() -> Runner:
    if importlib.util.find_spec("singer_core.conformance.audio") is None:
        raise SystemExit("audio_features cases need singer_core.conformance.audio, which is not installed")
    from singer_core.conformance.audio import run_audio_features

    return run_audio_features


def _unet_runner(kind: str) -> Runner:
    from singer_core.conformance import unet

    return unet.run_denoise_step if kind == "denoise_step" else unet.run_pipeline


def case_kind(case: dict) -> str:
    """The case kind, from the JSON's content (not its file name)."""
    official = case.get("official", "")
    if "dwt_returns" in case:
        return "dwt"
    if "MultiSpectralAttentionLayer" in official:
        return "msm"
    if "hidden_spectral_weighting" in official:
        return "sfm"
    if modules.is_small_module_case(case):
        return "small_module"
    if case and all(isinstance(v, dict) and modules.is_small_module_case(v) for v in case.values()):
        return "small_modules"
    if "wav2vec_config" in case:
        return "audio_features"
    if "net_weights" in case and "call_order" in case:
        return "denoise_step"
    if "net_weights" in case and "components" in case:
        return "pipeline"
    raise SystemExit(f"unrecognised case: top-level keys {sorted(case)[:8]}")


def runner_for(kind: str) -> Runner:
    table: dict[str, Callable[[], Runner]] = {
        "dwt": lambda: _named(modules.run_dwt),
        "msm": lambda: _named(modules.run_msm),
        "sfm": lambda: _named(modules.run_sfm),
        "small_module": lambda: _named(modules.run_small_module),
        "small_modules": lambda: lambda case, path: modules.run_small_modules(case, path.parent),
        "audio_features": _audio_runner,
        "denoise_step": lambda: _unet_runner(kind),
        "pipeline": lambda: _unet_runner(kind),
    }
    return table[kind]()


def run_case(path: Path) -> bool:
    """Run one case, print one line per output, return whether all are within tolerance."""
    case = json.loads(path.read_text())
    kind = case_kind(case)
    print(f"{path} ({kind})")
    try:
        with torch.no_grad():
            results = runner_for(kind)(case, path)
    except FileNotFoundError as error:
        print(f"  FAIL cannot run the case, a file is missing: {error}")
        return False
    except KeyError as error:
        print(f"  FAIL cannot run the case, a tensor or JSON entry is missing: {error}")
        return False
    for item in results:
        status = "ok  " if item.ok else "FAIL"
        shape = "" if tuple(item.actual.shape) == tuple(item.expected.shape) else (
            f"  shape {tuple(item.actual.shape)} != {tuple(item.expected.shape)}"
        )
        print(f"  {status} {item.name}: max abs error {item.max_abs_error:.3e} (atol {item.atol:.0e}){shape}")
    return bool(results) and all(item.ok for item in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m singer_core.conformance", description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="+", type=Path, help="case JSON files (e.g. tests/fixtures/msm.json)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2, like the fixtures)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    passed = [run_case(path) for path in args.cases]
    print("all cases pass" if all(passed) else f"{passed.count(False)} of {len(passed)} cases FAIL")
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
