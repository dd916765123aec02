"""Image projection: a face identity embedding -> cross-attention tokens.

Official class: ``ImageProjModel`` (the Net's ``imageproj``), fixtures README section 4.
"""

from __future__ import annotations

import torch
from torch import nn

from singer_core.errors import InputError


class ImageProjModel(nn.Module):
    """``[b, clip_embeddings_dim] -> [b, clip_extra_context_tokens, cross_attention_dim]``.

    Linear projection reshaped to tokens, then LayerNorm. Zeros in (the unconditional
    branch) do not give zeros out: the result is the LayerNorm of the projection bias.
    """

    def __init__(
        self, cross_attention_dim: int = 1024, clip_embeddings_dim: int = 1024, clip_extra_context_tokens: int = 4
    ) -> None:
        super().__init__()
        self.cross_attention_dim = cross_attention_dim
        self.clip_embeddings_dim = clip_embeddings_dim
        self.clip_extra_context_tokens = clip_extra_context_tokens
        self.proj = nn.Linear(clip_embeddings_dim, clip_extra_context_tokens * cross_attention_dim)
        self.norm = nn.LayerNorm(cross_attention_dim)

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        if image_embeds.shape[-1] != self.clip_embeddings_dim:
            raise InputError(
                f"Image projection: expected a face embedding of size {self.clip_embeddings_dim}, "
                f"got shape {tuple(image_embeds.shape)}."
            )
        tokens = self.proj(image_embeds).reshape(-1, self.clip_extra_context_tokens, self.cross_attention_dim)
        return self.norm(tokens)
