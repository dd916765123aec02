"""Shared test helpers: the official reference fixtures copied into tests/fixtures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

FIXTURES = Path(__file__).parent / "fixtures"
DATA = Path(__file__).parent / "data"

# 2 intra-op threads, as the fixtures were made, on every machine (torch's default is the core count, which
# changes which CPU kernels run and so the last bits); SINGER_TEST_THREADS varies it to check that no test relies
# on one thread count's bits (docs/numerics.md, "What is exact and what is fp32 rounding").
TEST_THREADS = int(os.environ.get("SINGER_TEST_THREADS", "2"))
torch.set_num_threads(TEST_THREADS)


@pytest.fixture(autouse=True)
def _same_thread_count_in_every_test():
    """Every test starts with ``TEST_THREADS``: a test (or the code it runs in-process) that changes torch's
    thread count must not change the kernels, and so the bits, of the tests after it."""
    torch.set_num_threads(TEST_THREADS)
    yield


def pytest_collection_modifyitems(config, items) -> None:
    """``cuda`` tests are skipped (and reported as skipped) without a CUDA GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs these on one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def fixture_io(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / f"{name}.io.safetensors"))


def fixture_weights(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / f"{name}.weights.safetensors"))


def fixture_net():
    """The fixtures' tiny official Net (``net_tiny``), loaded with strict key checks."""
    from singer_core.config import NetConfig
    from singer_core.net import SingerNet

    net = SingerNet(NetConfig.from_file(FIXTURES / "net_tiny.json"))
    net.load_state_dict(fixture_weights("net_tiny"), strict=True)
    return net.eval()


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float, what: str) -> None:
    """Shape check plus max-abs-error check with a message that names the tensor."""
    shapes = tuple(actual.shape), tuple(expected.shape)
    assert shapes[0] == shapes[1], f"{what}: shape {shapes[0]} != {shapes[1]}"
    err = (actual.detach().float() - expected.float()).abs().max().item()
    assert err <= atol, f"{what}: max abs error {err:.3e} > atol {atol:.0e}"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def data_dir() -> Path:
    return DATA
