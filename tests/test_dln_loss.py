"""The DLN's loss normalisation (`model.loss_norm`): closed forms, one value for training, evaluation and
probes, its place in the run id (left out at `sum`, the loss of every DLN run recorded before the key), and
bad values rejected."""

from __future__ import annotations

import pytest
import torch

from bnopt.config import LOSS_NORMS, ConfigError, identity, resolve, run_id, validate
from bnopt.losses import regression_loss
from bnopt.models import build_model
from bnopt.tasks import LinearRegression

from .conftest import make_cfg


def dln_cfg(*overrides: str):
    return resolve(make_cfg(["model=dln", "scale=smoke", "logger=none", "device=cpu", *overrides]))


def tiny_task(norm: str) -> tuple[LinearRegression, torch.nn.Module]:
    """A one-layer DLN y_hat = W x with W = I on 3 samples of dim 2, targets y = A x with A = 2 I: the error
    of each sample is -x, so E = sum of squared errors = |(1,0)|^2 + |(0,1)|^2 + |(1,1)|^2 = 4."""
    cfg = dln_cfg("model.depth=1", "model.dim=2", "data.dim=2", "data.n_samples=3", "scale.batch_size=3")
    cfg.model.loss_norm = norm
    task = LinearRegression(cfg, torch.device("cpu"))
    task.x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    task.y = 2.0 * task.x
    model = build_model(cfg.model)
    with torch.no_grad():
        model.blocks[0].layer.weight.copy_(torch.eye(2))
    return task, model


@pytest.mark.parametrize(("norm", "expected"), [("sum", 4.0), ("half_sum", 2.0), ("mean", 4.0 / 3.0)])
def test_closed_forms_on_a_one_layer_case(norm, expected):
    task, model = tiny_task(norm)
    x, y = task.batch(0)
    loss, _ = task.loss(model(x), y)
    assert loss.item() == pytest.approx(expected)
    # evaluation reports the same loss as training (and probes call task.loss)
    assert task.evaluate(model)["train_eval_loss"] == pytest.approx(expected)
    # the gradient scales with the normalisation: d/dW of E is 2 (W - A) X^T X = -2 X^T X
    loss.backward()
    grad_sum = -2.0 * x.T @ x
    assert torch.allclose(model.blocks[0].layer.weight.grad, grad_sum * expected / 4.0)


def test_regression_loss_on_the_dln_data_and_bad_value():
    cfg = dln_cfg()
    task = LinearRegression(cfg, torch.device("cpu"))
    out = torch.zeros_like(task.y)
    e = (task.y**2).sum()
    n = task.y.shape[0]
    assert torch.allclose(regression_loss(out, task.y, "sum"), e)
    assert torch.allclose(regression_loss(out, task.y, "half_sum"), e / 2)
    assert torch.allclose(regression_loss(out, task.y, "mean"), e / n)
    with pytest.raises(ValueError, match="loss normalisation"):
        regression_loss(out, task.y, "avg")


def test_loss_norm_shows_in_the_config_and_is_a_known_value():
    cfg = dln_cfg()
    assert cfg.model.loss_norm in LOSS_NORMS


def test_loss_norm_in_the_run_id_only_off_sum():
    default = dln_cfg()
    ids = {norm: run_id(dln_cfg(f"model.loss_norm={norm}")) for norm in LOSS_NORMS}
    assert run_id(default) == ids[default.model.loss_norm]
    assert len(set(ids.values())) == 3  # every normalisation is its own run
    # sum is left out of the identity, so DLN runs recorded before the key existed keep their ids
    assert "loss_norm" not in identity(dln_cfg("model.loss_norm=sum"))["model"]
    for norm in ("half_sum", "mean"):
        assert identity(dln_cfg(f"model.loss_norm={norm}"))["model"]["loss_norm"] == norm
    # the VGG family has no such key; its ids do not move
    vgg = resolve(make_cfg(["model=vgg16_bn", "data=synthetic", "scale=smoke", "logger=none"]))
    assert "loss_norm" not in identity(vgg)["model"]


@pytest.mark.parametrize("bad", ["avg", "Sum", "1"])
def test_unknown_loss_norm_is_one_config_error_line(bad):
    cfg = dln_cfg(f"model.loss_norm={bad}")
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "model.loss_norm" in msg and "half_sum" in msg
