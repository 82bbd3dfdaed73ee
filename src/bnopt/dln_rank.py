"""How many singular directions of its target a DLN run has learned (issue 24, item 6; docs/PROTOCOL.md
section 2, rules of 2026-12-07, "DLN (C7, C8)").

The DLN is a product of linear maps, so after training it is (near) a rank-k linear fit of its targets Y from
its inputs X, and its loss plateaus at the optimal rank-k residual (reduced-rank regression):

    E_k = ||Y - P_X Y||^2 + sum_{i>k} s_i(P_X Y)^2

(P_X the projection onto X's columns, s_i the singular values; with n >= dim samples Y = X A^T lies in X's
column space and E_k = sum_{i>k} s_i(Y)^2), under the run's `model.loss_norm` (`losses.regression_loss`:
half_sum E/2, sum E, mean E/n). A net with a norm layer (every norm of models/norms.py subtracts the batch
mean and adds a shift beta) or with biases is affine, not linear: its optimum is the rank-k fit of the
centred Y from the centred X plus Y's mean (`affine`): on results/small the normed nets' final losses sit
up to 0.1% below the linear E_k, which no linear fit can, and at or above the affine one. A run's k is the
rank whose residual is nearest its final loss (`readers.final_train_loss`) on a linear scale (`nearest_rank`):

    from bnopt import dln_rank
    k, residual = dln_rank.learned_directions(res, "dln-lr1e-06-0648bb4950")
    dln_rank.residuals(1000, 10, 1, "half_sum", affine=False)   # (E_0, ..., E_10) under the loss normalisation

The regression problem is rebuilt from the run folder's resolved config exactly as training builds it
(`data.gaussian_linear(n_samples, dim, data_seed)`); a `Results` without run folders (read from W&B) has no
config to rebuild it from, and `learned_directions` raises `readers.Missing`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from .data import gaussian_linear
from .losses import regression_loss
from .readers import Missing, final_train_loss
from .records import CONFIG_FILE
from .results import Results


def rank_residuals(x: torch.Tensor, y: torch.Tensor, norm: str, affine: bool = False) -> tuple[float, ...]:
    """(loss of the optimal rank-k linear fit of y from x, for k = 0 .. y's columns) under `norm`, in
    float64: the fit is P_X y projected onto the top k right singular vectors of P_X y. `affine`: the fit
    of the centred y from the centred x, plus y's mean (a rank-k map and a free shift)."""
    x, y = x.double(), y.double()
    shift = y.mean(0) if affine else torch.zeros(y.shape[1], dtype=y.dtype)
    xc = x - x.mean(0) if affine else x
    q, _ = torch.linalg.qr(xc)
    py = q @ (q.T @ (y - shift))
    _, _, vh = torch.linalg.svd(py, full_matrices=False)
    out = []
    for k in range(y.shape[1] + 1):
        v = vh[:k].T
        out.append(float(regression_loss(py @ v @ v.T + shift, y, norm)))
    return tuple(out)


@lru_cache(maxsize=128)
def residuals(n_samples: int, dim: int, data_seed: int, norm: str, affine: bool = False) -> tuple[float, ...]:
    """`rank_residuals` of the DLN problem `gaussian_linear(n_samples, dim, data_seed)` (cached)."""
    x, y, _ = gaussian_linear(n_samples, dim, data_seed)
    return rank_residuals(x, y, norm, affine)


def nearest_rank(loss: float, res_k: tuple[float, ...]) -> tuple[int, float]:
    """(k, E_k): the directions learned, each counted once the loss is below the midpoint of its step,
    (E_{i-1} + E_i) / 2, i.e. once more than half of its share s_i^2 of the loss is gone (the rank whose
    residual is nearest `loss` on a linear scale). A log scale, the rule until 2026-12-07, never counts the
    last direction: its E_d is 0 up to float rounding (1.6e-10), so a loss of 1.5e-4 sat nearer E_{d-1} = 8.5."""
    e = np.asarray(res_k, dtype=float)
    k = int(np.sum(loss < (e[:-1] + e[1:]) / 2)) if math.isfinite(loss) else 0
    return k, float(res_k[k])


def run_problem(res: Results, rid: str) -> tuple[int, int, int, str, bool]:
    """(n_samples, dim, data_seed, loss_norm, affine) of a DLN run, from its run folder's resolved config
    (affine: the net has a norm layer or biases); Missing for a run without a folder (W&B) or not a DLN."""
    runs = res.runs.set_index("run_id")
    if rid not in runs.index:
        raise Missing(f"no run {rid}")
    path = str(runs.loc[rid, "path"]) if "path" in runs else ""
    folder = Path(path)
    if not path or path.startswith("wandb:") or not (folder / CONFIG_FILE).exists():
        raise Missing(f"run {rid} has no run folder to read its regression problem from")
    cfg = OmegaConf.load(folder / CONFIG_FILE)
    if cfg.model.get("family") != "dln":
        raise Missing(f"run {rid} is not a DLN run")
    d, m = cfg.data, cfg.model
    affine = str(m.get("norm", "none")) != "none" or bool(m.get("bias", False))
    return int(d.n_samples), int(d.dim), int(d.data_seed), str(m.get("loss_norm", "sum")), affine


def learned_directions(res: Results, rid: str) -> tuple[int, float]:
    """(k, E_k) of a DLN run: the optimal rank-k residual nearest its final loss and that k; Missing
    without a run folder, or without a finite final loss."""
    loss = final_train_loss(res, rid)
    if not math.isfinite(loss) or loss <= 0:
        raise Missing(f"run {rid} has no finite final loss")
    return nearest_rank(loss, residuals(*run_problem(res, rid)))
