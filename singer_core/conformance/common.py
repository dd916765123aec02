"""Types shared by the per-kind conformance case runners."""

from __future__ import annotations

from dataclasses import dataclass

import torch

MODULE_ATOL = 1e-5
UNET_ATOL = 1e-4


@dataclass
class Comparison:
    """One output of a case: what we computed, what the official code stored, the tolerance."""

    name: str
    actual: torch.Tensor
    expected: torch.Tensor
    atol: float

    @property
    def max_abs_error(self) -> float:
        if tuple(self.actual.shape) != tuple(self.expected.shape):
            return float("inf")
        return (self.actual.detach().float() - self.expected.float()).abs().max().item()

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= self.atol
