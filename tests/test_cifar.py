"""A few hundred steps on the real CIFAR-10 (skipped, with the reason shown, when the shards are absent)."""

from __future__ import annotations

import pytest

from bnopt.results import load_runs
from bnopt.train import train

from .conftest import make_cfg

pytestmark = pytest.mark.e2e  # reads the real CIFAR-10


def test_real_cifar10_learns_well_above_chance(tmp_path, cifar_dir, monkeypatch):
    monkeypatch.setenv("BNOPT_DATA", str(cifar_dir))
    cfg = make_cfg(
        [
            "model=vgg16_bn",
            "data=cifar10",
            "data.source=npz",
            "scale=small",
            "scale.steps=300",
            "scale.eval_every=300",
            "model.width=0.125",
            "data.train_eval_size=1000",
            "logger=none",
            f"paths.results={tmp_path}",
        ]
    )
    res = train(cfg, progress=False)
    assert res.status == "done"
    ev = load_runs(tmp_path).metrics.query("kind == 'eval'").set_index("step")
    assert ev.loc[0, "test_acc"] < 0.2  # untrained: about chance
    assert ev.loc[300, "test_acc"] > 0.35 and ev.loc[300, "test_acc_exact"] > 0.35  # chance is 0.10
    assert ev.loc[300, "train_eval_acc"] > 0.35
