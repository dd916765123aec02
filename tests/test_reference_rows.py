"""The write pass computes each distinct row once and reuses the reference rows of the previous
clip, with the features of running every row of the official batch.

That rests on every reference-UNet layer working row by row, once the time-embedding and
face-token projections are taken from the whole official batch (``WriteRows``). Rows run in another
batch than the plain pass (a subset, 4 rows instead of 6), and CPU convolution kernels may round a row
differently with the batch size: bit for bit with 2 threads on our AMD EPYC, not with 3 threads there
(SINGER_TEST_THREADS=3) nor with oneDNN on an Intel Xeon with AMX. The float32 features then differ by
rounding, and their float16 bank copies by at most one fp16 ulp; these tests compare against the plain
computation of all rows at that tolerance, and require the bits where they hold by construction: a row
served from the memo is a copy of the row computed in the clip before.
"""

from __future__ import annotations

import pytest
import torch

from singer_core.conformance.unet import FP16_RELATIVE_ULP
from singer_core.models.reference_bank import BANK_DTYPE
from singer_core.models.reference_rows import RowMemo, RowPlan, WriteRows

from .conftest import fixture_io, fixture_net


@pytest.fixture(scope="module")
def net():
    return fixture_net()


@pytest.fixture(scope="module")
def tokens(net):
    emb = fixture_io("denoise_step")["input.face_emb"]
    with torch.no_grad():
        return torch.cat([net.imageproj(torch.zeros_like(emb)), net.imageproj(emb)])


def _latents(seed: int, count: int = 3) -> torch.Tensor:
    return torch.randn(count, 4, 32, 32, generator=torch.Generator().manual_seed(seed))


def _plain(net, latents: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every row of the official batch through the UNet in one batch."""
    with torch.no_grad():
        return net.reference_unet.run_rows(WriteRows.build(net.reference_unet, latents, tokens))


def _assert_same_features(actual: torch.Tensor, expected: torch.Tensor, what) -> None:
    """Float16 features of another batch: within one fp16 ulp of the tensor's largest value (the bank's
    tolerance against the official fixtures too, singer_core/conformance/unet.py): ~4e-3 here, where the row of
    the other condition is 0.5-0.8 off (past the first block) and the row of another latent ~5."""
    assert actual.dtype == expected.dtype == BANK_DTYPE and actual.shape == expected.shape, what
    atol = FP16_RELATIVE_ULP * expected.float().abs().max().item()
    torch.testing.assert_close(actual.float(), expected.float(), rtol=0, atol=atol, msg=lambda m: f"{what}: {m}")


def _assert_bank_equal(bank, plain: dict[str, torch.Tensor]) -> None:
    assert set(bank.features) == set(plain)
    for path, rows in plain.items():
        _assert_same_features(bank.features[path].flatten(0, 1), rows, path)


def test_any_subset_of_rows_gives_the_same_features(net, tokens) -> None:
    unet = net.reference_unet
    rows = WriteRows.build(unet, _latents(0), tokens)
    full = _plain(net, _latents(0), tokens)
    for subset in ([0, 3], [1, 2, 4, 5], [5, 1], [4, 0], [0, 1, 2, 3, 4]):
        with torch.no_grad():
            part = unet.run_rows(rows.select(subset))
        for path, t in full.items():
            _assert_same_features(part[path], t[subset], (subset, path))


def test_distinct_rows_are_all_computed(net, tokens) -> None:
    rows = WriteRows.build(net.reference_unet, _latents(1), tokens)
    assert RowPlan.build(rows, None).compute == list(range(6))


def test_first_clip_motion_copies_are_computed_once(net, tokens) -> None:
    """First clip: the motion frames are the reference, so rows repeat (the conditions alternate
    u, c, u, c, ...; rows in a different GEMM block keep their own time projections)."""
    latents = _latents(2, 1).expand(3, -1, -1, -1).contiguous()
    rows = WriteRows.build(net.reference_unet, latents, tokens)
    plan = RowPlan.build(rows, None)
    assert len(plan.compute) < 6
    assert plan.compute[:2] == [0, 1]
    with torch.no_grad():
        bank = net.reference_unet.write_bank(latents, tokens[:1], tokens[1:])
    _assert_bank_equal(bank, _plain(net, latents, tokens))


def test_memo_carries_the_reference_rows_to_the_next_clip(net, tokens) -> None:
    unet, memo = net.reference_unet, RowMemo()
    first, second = _latents(3), _latents(4)
    second[0] = first[0]  # same reference, new motion frames
    with torch.no_grad():
        before = unet.write_bank(first, tokens[:1], tokens[1:], memo)
        assert memo.hits == 0
        bank = unet.write_bank(second, tokens[:1], tokens[1:], memo)
    assert memo.hits == 2
    assert RowPlan.build(WriteRows.build(unet, second, tokens), memo).compute == [1, 2, 4, 5]
    for path, features in bank.features.items():  # [halves, rows, hw, c]: the reference rows are copies
        assert torch.equal(features[:, 0], before.features[path][:, 0]), path
    _assert_bank_equal(bank, _plain(net, second, tokens))


@pytest.mark.parametrize("change", ["new_face", "swapped_halves"])
def test_memo_with_other_face_tokens(net, tokens, change: str) -> None:
    """A new face misses the memo; swapped halves may hit it (row (ref, c) moved to a row with the
    same time projection), and either way the bank is the plain one."""
    unet, memo = net.reference_unet, RowMemo()
    latents = _latents(5)
    other = tokens + 0.25 if change == "new_face" else tokens.flip(0).contiguous()
    with torch.no_grad():
        unet.write_bank(latents, tokens[:1], tokens[1:], memo)
        bank = unet.write_bank(latents, other[:1], other[1:], memo)
    if change == "new_face":
        assert memo.hits == 0
    _assert_bank_equal(bank, _plain(net, latents, other))


def test_without_guidance_one_half(net, tokens) -> None:
    latents = _latents(6)
    with torch.no_grad():
        bank = net.reference_unet.write_bank(latents, None, tokens[1:])
    assert bank.halves == 1
    _assert_bank_equal(bank, _plain(net, latents, tokens[1:]))


def test_a_lone_row_runs_with_a_partner(net, tokens) -> None:
    """Without guidance the first clip's rows are all the same: still two rows run (a batch of one
    takes other CPU kernels), and the bank matches the plain computation."""
    latents = _latents(7, 1).expand(3, -1, -1, -1).contiguous()
    cond = tokens[1:]
    assert len(RowPlan.build(WriteRows.build(net.reference_unet, latents, cond), None).compute) == 2
    with torch.no_grad():
        bank = net.reference_unet.write_bank(latents, None, cond)
    _assert_bank_equal(bank, _plain(net, latents, cond))


def test_one_pixel_deepest_level_runs_the_plain_pass(net, tokens) -> None:
    """8x8 latents: the deepest level is 1x1, where the convolutions mix rows' bits with the batch
    size; there every row runs and a memo is not used."""
    unet, memo = net.reference_unet, RowMemo()
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(8))
    latents[1:] = latents[0]
    calls = []
    with torch.no_grad():
        for _ in range(2):
            bank = unet.write_bank(latents, tokens[:1], tokens[1:], memo)
            calls.append(memo.hits)
    assert calls == [0, 0]
    _assert_bank_equal(bank, _plain(net, latents, tokens))
