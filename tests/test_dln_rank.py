"""bnopt.dln_rank: the optimal rank-k residuals of a regression problem, and a DLN run's k."""

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from bnopt import dln_rank
from bnopt.data import gaussian_linear
from bnopt.readers import Missing
from bnopt.results import Results
from tests.run_rows import run_row


def test_rank_residuals_closed_form():
    """X = [I; 0] and Y = [diag(3, 2, 1); (1, 0, 0)]: ||Y - P_X Y||^2 = 1 (the row outside X's span), P_X Y
    has singular values 3, 2, 1, so E_k = 1 + sum_{i>k} s_i^2 = 15, 6, 2, 1; normalised as the loss is."""
    x = torch.cat([torch.eye(3), torch.zeros(1, 3)])
    y = torch.cat([torch.diag(torch.tensor([3.0, 2.0, 1.0])), torch.tensor([[1.0, 0.0, 0.0]])])
    assert dln_rank.rank_residuals(x, y, "sum") == pytest.approx((15.0, 6.0, 2.0, 1.0))
    assert dln_rank.rank_residuals(x, y, "half_sum") == pytest.approx((7.5, 3.0, 1.0, 0.5))
    assert dln_rank.rank_residuals(x, y, "mean") == pytest.approx((15 / 4, 6 / 4, 2 / 4, 1 / 4))


def test_rank_residuals_affine_fits_a_shift():
    """Y = X B + c: a linear fit of full rank leaves the shift c, an affine one leaves nothing."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = x @ torch.randn(3, 3, generator=g, dtype=torch.float64) + torch.tensor([5.0, -2.0, 1.0], dtype=torch.float64)
    assert dln_rank.rank_residuals(x, y, "sum", affine=True)[-1] == pytest.approx(0.0, abs=1e-9)
    assert dln_rank.rank_residuals(x, y, "sum")[-1] > 1.0
    # rank 0: the affine fit is Y's mean, so its residual is Y's centred sum of squares
    assert dln_rank.rank_residuals(x, y, "sum", affine=True)[0] == pytest.approx(float(((y - y.mean(0)) ** 2).sum()))


def test_residuals_of_the_dln_problem_are_half_the_tail_of_y_singular_values():
    """n >= dim: Y = X A^T lies in X's span, so E_k = 1/2 sum_{i>k} s_i(Y)^2 (issue 24, item 6)."""
    _, y, _ = gaussian_linear(200, 5, 3)
    s2 = torch.linalg.svdvals(y.double()) ** 2
    want = [0.5 * float(s2[k:].sum()) for k in range(6)]
    got = dln_rank.residuals(200, 5, 3, "half_sum")
    assert got[:5] == pytest.approx(want[:5], rel=1e-9)
    assert got[5] == pytest.approx(0.0, abs=1e-6)


def test_nearest_rank_counts_a_direction_once_half_its_share_is_gone():
    res_k = (1000.0, 100.0, 10.0, 0.0)
    assert dln_rank.nearest_rank(101.0, res_k) == (1, 100.0)
    assert dln_rank.nearest_rank(56.0, res_k) == (1, 100.0)  # 49% of direction 2's share gone
    assert dln_rank.nearest_rank(54.0, res_k) == (2, 10.0)  # 51%
    assert dln_rank.nearest_rank(30.0, res_k) == (2, 10.0)
    # the last direction: its residual is 0 up to rounding, and a loss far below the one before has learned it
    assert dln_rank.nearest_rank(1e-3, res_k) == (3, 0.0)
    assert dln_rank.nearest_rank(1.5e-4, (1e4, 8.474, 1.6e-10)) == (2, 1.6e-10)
    assert dln_rank.nearest_rank(2e3, res_k) == (0, 1000.0)  # above E_0: nothing learned
    assert dln_rank.nearest_rank(float("inf"), res_k) == (0, 1000.0)


def _dln_results(tmp_path, norm: str, loss: float, folder: bool = True) -> Results:
    path = tmp_path / "runs" / f"dln-{norm}"
    path.mkdir(parents=True)
    cfg = {
        "model": {"family": "dln", "norm": norm, "bias": False, "loss_norm": "half_sum"},
        "data": {"n_samples": 200, "dim": 5, "data_seed": 3},
    }
    OmegaConf.save(OmegaConf.create(cfg), path / "config.yaml")
    where = str(path) if folder else "wandb:project/abc"
    runs = pd.DataFrame([run_row("dln", 1e-6, run_id=f"dln-{norm}", steps=100, path=where)])
    steps = range(100)
    metrics = pd.DataFrame(dict(step=steps, kind="train", loss=[loss] * 100, run_id=f"dln-{norm}"))
    return Results(runs, metrics, pd.DataFrame())


def test_learned_directions_of_a_run(tmp_path):
    """A run whose final loss sits at E_2 of its problem has learned 2 directions; a normed net is fitted
    with a shift (affine), a plain one without."""
    e_lin = dln_rank.residuals(200, 5, 3, "half_sum")
    e_aff = dln_rank.residuals(200, 5, 3, "half_sum", affine=True)
    k, e = dln_rank.learned_directions(_dln_results(tmp_path / "a", "none", e_lin[2] * 1.001), "dln-none")
    assert (k, e) == (2, pytest.approx(e_lin[2]))
    k, e = dln_rank.learned_directions(_dln_results(tmp_path / "b", "batch", e_aff[3] * 0.999), "dln-batch")
    assert (k, e) == (3, pytest.approx(e_aff[3]))
    assert e_aff[3] < e_lin[3]  # the shift only helps


def test_learned_directions_needs_a_run_folder(tmp_path):
    with pytest.raises(Missing):
        dln_rank.learned_directions(_dln_results(tmp_path, "none", 10.0, folder=False), "dln-none")
