"""The random BN units on which the theorem checks run, drawn alike for Thm 4.1 (C9) and Thm 4.2 (B2).

A unit is a batch of m pre-BN activations y, BN's scale gamma and shift beta, and the weights w of the
linear term of a smooth loss of the BN output, all float64 and drawn in this order from one generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BATCH_SIZES = (4, 256)  # m is drawn from [4, 255]


@dataclass
class BnUnit:
    m: int
    y: torch.Tensor  # [m], requires grad
    gamma: float
    beta: float
    w: torch.Tensor  # [m]


def random_bn_unit(gen: torch.Generator, m: int | None = None) -> BnUnit:
    """One unit from `gen` (m drawn from BATCH_SIZES unless given): y ~ 3 N(0, 1) + 1, gamma ~ U(0.1, 2.1),
    beta ~ N(0, 1), w ~ N(0, 1)."""
    if m is None:
        m = int(torch.randint(*BATCH_SIZES, (1,), generator=gen))
    y = (torch.randn(m, generator=gen, dtype=torch.float64) * 3 + 1).requires_grad_(True)
    gamma, beta = float(torch.rand(1, generator=gen) * 2 + 0.1), float(torch.randn(1, generator=gen))
    return BnUnit(m, y, gamma, beta, torch.randn(m, generator=gen, dtype=torch.float64))
