"""Every config group option composes, resolves and validates; scale presets resolve as documented."""

from __future__ import annotations

import pytest

from bnopt.config import CONFIG_DIR, ConfigError, resolve, run_id, scientific_config, validate

from .conftest import make_cfg


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize("group", ["model", "data", "optim", "probes", "logger", "scale"])
def test_every_group_option_composes_and_validates(group):
    assert options(group), f"configs/{group} is empty"
    for option in options(group):
        overrides = [f"{group}={option}"]
        if group == "data" and option == "gaussian_linear":
            overrides.append("model=dln")
        cfg = resolve(make_cfg(overrides))
        validate(cfg)
        assert cfg[group] is not None


def test_dln_models_bring_their_data_and_learning_rate():
    cfg = resolve(make_cfg(["model=dln_bn"]))
    assert cfg.data.name == "gaussian_linear" and cfg.optim.lr == 1e-6
    assert cfg.scale.steps == 10_000 and cfg.scale.batch_size == 1000  # full-batch GD as the paper
    cfg = resolve(make_cfg(["model=dln_bn", "optim.lr=1e-7"]))
    assert cfg.optim.lr == 1e-7


def test_paper_scale_is_the_paper_protocol():
    cfg = resolve(make_cfg(["scale=paper"]))
    assert (cfg.scale.steps, cfg.scale.batch_size, cfg.model.width) == (15_000, 128, 1.0)
    assert cfg.optim.lr == 0.1 and cfg.optim.momentum == 0 and cfg.optim.weight_decay == 0
    assert cfg.data.std == [0.2470, 0.2435, 0.2616] and cfg.data.augment is False


def test_auto_scale_is_small_on_cpu_and_keeps_explicit_values():
    cfg = resolve(make_cfg(["scale=auto", "device=cpu", "scale.steps=7"]))
    assert cfg.scale.name == "small" and cfg.scale.steps == 7 and cfg.model.width == 0.25


def test_explicit_width_wins_over_scale():
    cfg = resolve(make_cfg(["scale=smoke", "model.width=0.5"]))
    assert cfg.model.width == 0.5


def test_run_id_hashes_the_scientific_config_only():
    a = resolve(make_cfg(["scale=smoke", "paths.results=/x", "logger=none"]))
    b = resolve(make_cfg(["scale=smoke", "paths.results=/y", "logger=wandb", "data.root=/elsewhere"]))
    assert run_id(a) == run_id(b)
    c = resolve(make_cfg(["scale=smoke", "optim.lr=0.5"]))
    assert run_id(c) != run_id(a) and run_id(c).startswith("vgg16_bn-lr0.5-")
    # the same numbers reached through a different preset name are the same run
    d = resolve(make_cfg(["scale=paper", "scale.steps=30", "scale.batch_size=32", "scale.eval_every=10",
                          "model.width=0.0625"]))
    assert scientific_config(d)["scale"] == scientific_config(a)["scale"]


@pytest.mark.parametrize("override, message", [
    (["model.norm=group"], "unknown model.norm 'group'"),
    (["optim.lr=0"], "optim.lr must be a positive"),
    (["optim.lr=-0.1"], "optim.lr must be a positive"),
    (["scale=smoke", "scale.steps=0"], "scale.steps must be a positive integer"),
    (["scale=smoke", "scale.batch_size=-1"], "scale.batch_size must be a positive integer"),
    (["scale=smoke", "scale.batch_size=60000"], "larger than the training set"),
    (["model.width=0"], "model.width must be a positive"),
    (["data.source=ftp"], "unknown data.source 'ftp'"),
    (["data.source=npz", "data.root=/does/not/exist"], "data path /does/not/exist does not exist"),
    (["model=dln", "data=cifar10"], "trains on data gaussian_linear"),
    (["logger.mode=sometimes"], "unknown logger.mode"),
    (["scale.name=huge"], "unknown scale 'huge'"),
    (["probes=paper", "probes.ics.layers=[14]"], "out of range|layers"),
    (["probes=paper", "probes.landscape.etas=[-1]"], "etas must be"),
])
def test_bad_values_are_one_clear_error(override, message, monkeypatch):
    monkeypatch.delenv("BNOPT_DATA", raising=False)
    with pytest.raises(ConfigError, match=message):
        validate(resolve(make_cfg(override)))
