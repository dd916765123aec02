"""SingerNet reproduces the official Net's state-dict layout (tiny fixture and full-size manifests)."""

from __future__ import annotations

import pytest
import torch

from singer_core.config import NetConfig
from singer_core.net import SingerNet
from tests.conftest import FIXTURES, fixture_json, fixture_weights


def _table(net: torch.nn.Module) -> dict[str, tuple[list[int], str]]:
    return {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in net.state_dict().items()}


@pytest.mark.parametrize(("builder", "manifest"), [("singer", "singer_net_manifest"), ("hallo", "hallo_net_manifest")])
def test_full_size_state_dict_matches_manifest(builder: str, manifest: str) -> None:
    with torch.device("meta"):
        net = SingerNet(getattr(NetConfig, builder)())
    expected = {k: (shape, dtype) for k, shape, dtype in fixture_json(manifest)["keys"]}
    actual = _table(net)
    missing, unexpected = sorted(expected.keys() - actual.keys()), sorted(actual.keys() - expected.keys())
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"
    wrong = [(k, actual[k], expected[k]) for k in expected if actual[k] != expected[k]]
    assert not wrong, f"shape/dtype mismatches: {wrong[:5]}"
    persistent_buffers = {k for k, _ in net.named_buffers()} & actual.keys()
    assert persistent_buffers == set(fixture_json(manifest)["buffers"])


def test_hallo_has_no_wavelet_modules() -> None:
    with torch.device("meta"):
        net = SingerNet(NetConfig.hallo())
    assert net.audioembed is None and net.denoising_unet.hidden_spectral_weighting is None
    assert not net.is_singer


def test_tiny_fixture_loads_strictly() -> None:
    net = SingerNet(NetConfig.from_file(FIXTURES / "net_tiny.json"))
    weights = fixture_weights("net_tiny")
    net.load_state_dict(weights, strict=True)
    assert _table(net) == {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in weights.items()}
