"""The DLN's regression loss, shared by its training task (bnopt.tasks) and the readers that rebuild its
optimum from records (bnopt.dln_rank), which must not import the training side."""

from __future__ import annotations

import torch

from .config import LOSS_NORMS

# The DLN's regression loss, from the squared errors E = sum over samples i and outputs j of (out_ij - y_ij)^2
# of a batch of n samples (model.loss_norm): sum = E, half_sum = E / 2, mean = E / n (the mean over samples
# of each sample's summed squared error). The paper does not say which; docs/PROTOCOL.md section 1.2 has the
# evidence behind the default.


def regression_loss(out: torch.Tensor, y: torch.Tensor, norm: str = "sum") -> torch.Tensor:
    """Squared error of out against y under the normalisation `norm` (one of LOSS_NORMS)."""
    err = (out - y).pow(2).sum()
    if norm == "sum":
        return err
    if norm == "half_sum":
        return 0.5 * err
    if norm == "mean":
        return err / out.shape[0]
    raise ValueError(f"unknown loss normalisation {norm!r}; choose one of {', '.join(LOSS_NORMS)}")
