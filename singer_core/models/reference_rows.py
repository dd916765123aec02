"""Rows of the reference-UNet write pass: their conditioning, and which of them need computing.

The official pass runs ``halves x [reference, motion frames...]`` rows with the conditions
``[u, c, u, c, ...]`` (quirk 3 of docs/official_quirks.md). Every layer of the reference UNet works row by row,
except two tiny matrix products: the time embedding's projection in each resnet and the cross-attention
keys/values of the face tokens. On the CPU their result for a row depends on its position in the
batch (GEMM kernels treat the rows past a multiple of 4 apart), so they are computed for the whole
official batch and then sliced. With that, any subset of rows gives the features of the whole batch
up to fp32 rounding (bit for bit where the CPU's convolution kernels do not depend on the batch
size, e.g. our CI's AMD EPYC with 2 threads; docs/numerics.md), and a row whose inputs are
bit-identical to an already computed row is not computed again: in the first clip the motion frames
are copies of the reference, and the reference rows of a clip are those of the previous clip
(:class:`RowMemo`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from singer_core.models.spatial_transformer import ReferenceTransformerBlock

RowFeatures = dict[str, torch.Tensor]  # block path -> [hw, c] of one row


@dataclass
class WriteRows:
    """Per-row inputs of the write batch, each tensor ``[rows, ...]``; ``latent_index`` says which
    input latent (0 = reference) a row comes from."""

    latents: torch.Tensor
    latent_index: list[int]
    time_bias: dict[nn.Module, torch.Tensor]  # resnet -> time_emb_proj(silu(temb)) [rows, C]
    cross_kv: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]  # attn2 -> keys, values [rows, T, C]

    @classmethod
    def build(cls, unet: nn.Module, ref_latents: torch.Tensor, tokens: torch.Tensor) -> WriteRows:
        """The official batch: ``tokens`` ``[halves, T, C]`` ([uncond, cond] or [cond]), each half
        running every latent of ``ref_latents``; the conditions alternate per row
        (quirk 3 of docs/official_quirks.md)."""
        halves, count = tokens.shape[0], ref_latents.shape[0]
        context = tokens.repeat(count, 1, 1)
        timestep = torch.zeros(halves * count, dtype=torch.long, device=ref_latents.device)
        temb = F.silu(unet.time_embedding(unet.time_proj(timestep).to(ref_latents.dtype)))
        blocks = [m for m in unet.modules() if isinstance(m, ReferenceTransformerBlock)]
        return cls(
            latents=ref_latents.repeat(halves, 1, 1, 1),
            latent_index=list(range(count)) * halves,
            time_bias={m: m.time_emb_proj(temb) for m in unet.modules() if isinstance(m, ResnetBlock2D)},
            cross_kv={block.attn2: block.context_kv(context) for block in blocks},
        )

    def __len__(self) -> int:
        return self.latents.shape[0]

    def select(self, rows: list[int]) -> WriteRows:
        index = torch.tensor(rows, device=self.latents.device)
        return WriteRows(
            latents=self.latents[index],
            latent_index=[self.latent_index[r] for r in rows],
            time_bias={m: t[index] for m, t in self.time_bias.items()},
            cross_kv={m: (k[index], v[index]) for m, (k, v) in self.cross_kv.items()},
        )

    def signature(self, row: int) -> list[torch.Tensor]:
        """Everything the features of ``row`` depend on (the weights aside)."""
        inputs = [self.latents[row], *(t[row] for t in self.time_bias.values())]
        return inputs + [t[row] for kv in self.cross_kv.values() for t in kv]


def same_signature(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    """Bit-identical inputs (same shapes, dtypes and devices too)."""
    return len(a) == len(b) and all(_same_tensor(x, y) for x, y in zip(a, b, strict=True))


def _same_tensor(x: torch.Tensor, y: torch.Tensor) -> bool:
    return x.shape == y.shape and x.dtype == y.dtype and x.device == y.device and torch.equal(x, y)


@dataclass
class RowMemo:
    """Features of the reference rows of the last write pass, for the next clip of the same
    generation (same weights, reference and face tokens). Explicit per-generation state: create
    one per song and pass it to every write pass."""

    entries: list[tuple[list[torch.Tensor], RowFeatures]] = field(default_factory=list)
    hits: int = 0  # rows served from the memo so far

    def find(self, signature: list[torch.Tensor]) -> RowFeatures | None:
        found = next((features for sig, features in self.entries if same_signature(sig, signature)), None)
        self.hits += found is not None
        return found

    def keep(self, entries: list[tuple[list[torch.Tensor], RowFeatures]]) -> None:
        """Replaces the memo (copies, so the previous bank can be freed)."""
        self.entries = [(sig, {path: t.clone() for path, t in features.items()}) for sig, features in entries]


@dataclass
class RowPlan:
    """Where each row's features come from: ``compute`` lists the rows the UNet runs; ``source[r]``
    is an index into those, or the memo's features.

    A lone row is run together with a second one: CPU convolutions take other kernels for a batch
    of one (e.g. ``conv_in`` with its 4 input channels), which would change its bits. Likewise,
    when the deepest level is a single pixel (latents under 16) the convolutions there become a
    matrix product over the batch with a row tail, so the UNet runs the plain pass
    (:meth:`every_row`).
    """

    compute: list[int]
    source: list[int | RowFeatures]

    @classmethod
    def build(cls, rows: WriteRows, memo: RowMemo | None) -> RowPlan:
        signatures = [rows.signature(r) for r in range(len(rows))]
        compute: list[int] = []
        source: list[int | RowFeatures] = []
        for r, sig in enumerate(signatures):
            hit = memo.find(sig) if memo is not None else None
            twin = next((i for i, c in enumerate(compute) if same_signature(signatures[c], sig)), None)
            if hit is not None:
                source.append(hit)
            elif twin is not None:
                source.append(twin)
            else:
                source.append(len(compute))
                compute.append(r)
        if len(compute) == 1 and len(rows) > 1:
            compute.append(next(r for r in range(len(rows)) if r != compute[0]))
        return cls(compute, source)

    @classmethod
    def every_row(cls, count: int) -> RowPlan:
        """The plain official pass: every row computed."""
        return cls(list(range(count)), list(range(count)))

    def gather(self, computed: dict[str, torch.Tensor]) -> list[RowFeatures]:
        """Every row's features, from ``computed`` (``{path: [len(compute), hw, c]}``) or the memo."""
        return [
            source if isinstance(source, dict) else {path: t[source] for path, t in computed.items()}
            for source in self.source
        ]
