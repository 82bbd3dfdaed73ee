"""Every config group option composes, resolves and validates; scale presets resolve as documented."""

from __future__ import annotations

import pytest

from bnopt.config import CONFIG_DIR, ConfigError, identity, resolve, run_id, validate

from .conftest import make_cfg


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.integration
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


SMOKE_VGG = ["scale=smoke", "probes=paper"]


def rid(*overrides: str, base=SMOKE_VGG) -> str:
    return run_id(resolve(make_cfg([*base, *overrides])))


def test_run_id_ignores_where_and_how_a_run_is_stored_or_shown():
    a = rid("paths.results=/x", "logger=none")
    assert (
        rid(
            "paths.results=/y",
            "logger=wandb",
            "logger.mode=disabled",
            "data.root=/elsewhere",
            "device=cpu",
            "experiment_name=other",
            "model.channels_last=false",
        )
        == a
    )
    assert rid("data.source=npz") == a and rid("data.source=torchvision") == a  # the same images


@pytest.mark.parametrize(
    "override",
    [
        "seed=1",
        "optim.lr=0.5",
        "optim.momentum=0.9",
        "optim.weight_decay=1e-4",
        "model=vgg16",
        "model.width=0.5",
        "model.bias=false",
        "model.eps=1e-3",
        "data.augment=true",
        "data.train_eval_size=100",
        "data.test_size=500",
        "scale.steps=31",
        "scale.batch_size=64",
        "scale.eval_every=5",
        "probes.landscape.every=6",
        "probes.ics.every=7",
        "probes.activations.every=8",
        "probes.gradnorms.every=2",
        "probes.every=9",
        "probes.landscape.etas=[0.1]",
        "probes.landscape.direction=random",
        "probes.landscape.seed=5",
        "probes.ics.layers=[1]",
        "probes.activations.layers=[2]",
        "probes.activations.bins=32",
        "probes.activations.edges=first",
        "model.init_scale=2",
        "model.init=orthogonal",
        "probes.landscape.dtype=float64",
        "probes.landscape.norm_params=false",
        "probes.landscape.enabled=false",
        "probes=none",
        "scale.vgg.probe_every.landscape=6",
    ],
)
def test_every_recorded_setting_changes_the_run_id(override):
    assert rid(override) != rid()


def test_settings_added_after_runs_were_recorded_leave_the_run_id_alone_at_their_old_value():
    """model.init and the landscape probe's dtype / norm_params (issue 25) came after runs were recorded: at the
    values those runs used they are left out of the id, at any depth of IDENTITY_DEFAULTS."""
    base = rid()
    assert rid("model.init=glorot", "probes.landscape.dtype=float32", "probes.landscape.norm_params=true") == base
    assert rid("dln_setup=protocol") == base  # the ablation's protocol set-up is the protocol's run
    assert rid("dln_setup=orthogonal") == rid("model.init=orthogonal") != base
    assert rid("dln_setup=float64") == rid("probes.landscape.dtype=float64") != base


def test_an_unknown_init_is_one_config_error():
    with pytest.raises(ConfigError, match="unknown model.init 'he'; choose one of glorot, orthogonal"):
        validate(resolve(make_cfg(["model.init=he"])))


def test_probe_cadence_from_the_scale_preset_is_in_the_run_id():
    """The bug of issue 9: runs differing only in the preset's probe cadence shared one folder."""
    a = resolve(make_cfg([*SMOKE_VGG, "scale.vgg.probe_every.landscape=5"]))
    b = resolve(make_cfg([*SMOKE_VGG, "scale.vgg.probe_every.landscape=6"]))
    assert (a.probes.landscape.every, b.probes.landscape.every) == (5, 6)
    assert run_id(a) != run_id(b)


def test_derived_values_are_resolved_in_the_config():
    cfg = resolve(make_cfg(["scale=small", "probes=paper"]))
    assert cfg.model.width == 0.25 and cfg.scale.steps == 2000
    assert (cfg.probes.landscape.every, cfg.probes.gradnorms.every) == (100, 10)
    assert cfg.probes.landscape.etas[0] == 0.05 and len(cfg.probes.landscape.etas) == 8
    assert list(cfg.probes.ics.layers) == [5, 10] and cfg.probes.landscape.seed == 2
    dln = resolve(make_cfg(["model=dln_bn", "scale=small", "probes=paper", "seed=3"]))
    assert list(dln.probes.ics.layers) == [9, 17] and dln.probes.landscape.etas[0] == 1e-8
    assert dln.probes.landscape.seed == 5
    assert resolve(make_cfg(["scale=small", "probes=paper", "probes.every=7"])).probes.gradnorms.every == 7


def test_the_same_numbers_through_two_presets_are_one_run():
    small = resolve(make_cfg(["model=dln_bn", "scale=small", "probes=paper"]))
    paper = resolve(make_cfg(["model=dln_bn", "scale=paper", "probes=paper"]))
    assert small.scale.name != paper.scale.name and run_id(small) == run_id(paper)
    assert "name" not in identity(small)["scale"]
    vgg_small = rid("probes=paper", base=["scale=small"])
    assert rid("probes=paper", base=["scale=paper"]) != vgg_small


@pytest.mark.e2e
def test_cfg_job_resolve_prints_what_the_hash_sees():
    from .conftest import run_cli

    proc = run_cli("model=vgg16", "scale=smoke", "probes=paper", "--cfg", "job", "--resolve")
    assert proc.returncode == 0, proc.stderr
    from omegaconf import OmegaConf

    printed = OmegaConf.create(proc.stdout)
    expected = resolve(make_cfg(["model=vgg16", "scale=smoke", "probes=paper"]))
    assert identity(printed) == identity(expected)
    assert printed.probes.landscape.every == 5 and printed.model.width == 0.0625


@pytest.mark.parametrize(
    "override, message",
    [
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
        (["seed=-1"], "seed must be an integer"),
        (["data.source=synthetic"], "use data=synthetic"),
        (["probes=paper", "probes.ics.layers=[14]"], "out of range|layers"),
        (["probes=paper", "probes.landscape.etas=[-1]"], "etas must be"),
        (["probes=paper", "probes.activations.edges=last"], "probes.activations.edges must be one of"),
    ],
)
def test_bad_values_are_one_clear_error(override, message, monkeypatch):
    monkeypatch.delenv("BNOPT_DATA", raising=False)
    with pytest.raises(ConfigError, match=message):
        validate(resolve(make_cfg(override)))


@pytest.mark.integration
@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=fig1", "model=vgg16", "optim.lr=0.5", "seed=2", "scale=small", "paths.results=/tmp/r"],
        ["model=dln_bn", "scale=smoke", "seed=3", "data.data_seed=0", "model.loss_norm=sum"],
        ["scale.steps=4", "data=synthetic", "model=vgg16_l1", "scale=smoke", "probes=rank", "model.init_scale=0.1"],
        ["model=vgg16", "+extra.key=1"],  # an add takes Hydra's whole path
    ],
)
def test_compose_run_is_hydras_compose(overrides):
    """compose_run caches the defaults list per set of group choices and sets the values on a copy: the
    config is the one Hydra's own compose gives, and a change to one result does not leak into the next."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from bnopt import experiments

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        want = OmegaConf.to_yaml(compose("train", overrides=overrides))
    first = experiments.compose_run(overrides)
    assert OmegaConf.to_yaml(first) == want
    first.seed = 99
    assert OmegaConf.to_yaml(experiments.compose_run(overrides)) == want


def test_compose_run_keeps_hydras_errors():
    from hydra.errors import ConfigCompositionException

    from bnopt import experiments

    with pytest.raises(ConfigCompositionException, match="Could not override 'paths.results_dir'"):
        experiments.compose_run(["model=vgg16", "paths.results_dir=x"])
    with pytest.raises(ConfigCompositionException, match="Ambiguous value for argument 'optim.lr=0.1,0.2'"):
        experiments.compose_run(["optim.lr=0.1,0.2"])


# ------------------------------------------------------------- scale=auto is the preset it resolves to


@pytest.mark.integration
@pytest.mark.parametrize("cuda, preset", [(False, "small"), (True, "paper")])
def test_auto_is_the_preset_it_resolves_to(monkeypatch, cuda, preset):
    """Issue 22: auto.yaml lacked `batch_study`, so every default command failed to resolve
    (experiment=beyond_batch). auto must resolve to exactly the preset it names, key for key."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    for model in ("vgg16_bn", "dln_bn"):
        auto = resolve(make_cfg([f"model={model}", "scale=auto"])).scale
        want = resolve(make_cfg([f"model={model}", f"scale={preset}"])).scale
        assert auto.name == preset and auto.requested == "auto"
        assert {k: v for k, v in auto.items() if k != "requested"} == dict(want)


@pytest.mark.parametrize("preset", [p for p in options("scale") if p != "auto"])
def test_every_key_a_preset_defines_is_in_auto(preset):
    auto = make_cfg(["scale=auto"]).scale
    assert set(make_cfg([f"scale={preset}"]).scale) <= set(auto)


# committed runs (results/small/runs/<run_id>) and the overrides that planned them: moving config files
# (the private bases) or adding preset keys must not change what a run is
COMMITTED_RUNS = {
    "vgg16_bn-lr0.1-376ca34a11": ["experiment=fig1", "model=vgg16_bn", "optim.lr=0.1", "seed=0"],
    "dln_bn-lr1e-06-fc9dd5f187": ["experiment=fig3_ics_dln", "model=dln_bn", "optim.lr=1e-6", "seed=0"],
    "vgg16-lr0.00625-a121dd810f": ["experiment=beyond_batch", "model=vgg16", "scale.batch_size=8", "seed=0"],
}


@pytest.mark.integration
@pytest.mark.parametrize("scale", ["small", "auto"])
@pytest.mark.parametrize("known_id", sorted(COMMITTED_RUNS))
def test_committed_run_ids_are_unchanged(scale, known_id):
    from pathlib import Path

    assert (Path(CONFIG_DIR).parent / "results" / "small" / "runs" / known_id).is_dir()
    cfg = resolve(make_cfg([*COMMITTED_RUNS[known_id], f"scale={scale}", "device=cpu"]))
    validate(cfg)
    assert run_id(cfg) == known_id


@pytest.mark.integration
@pytest.mark.parametrize("scale", options("scale"))
def test_every_experiment_composes_resolves_validates_and_plans_at_every_scale(scale, tmp_path):
    """`make plan` / `make reproduce` at each SCALE= (auto is the README's default): every experiment of
    the registry plans, each run composed, resolved and validated (bnopt.reproduce.plan)."""
    from bnopt import experiments, reproduce

    runs = reproduce.plan(None, scale, tmp_path)
    planned = {name for r in runs for name in r.experiments}
    assert planned == set(experiments.registry())
    if scale == "auto":  # small on this CPU: the same runs
        assert {r.run_id for r in runs} == {r.run_id for r in reproduce.plan(None, "small", tmp_path)}


def test_a_plan_at_auto_composes_the_preset_hydra_resolves_auto_to():
    """reproduce.preset_of: `make plan` / `make reproduce` at SCALE=auto compose the preset auto stands for,
    the one configs/scale/auto.yaml resolves to for the same device (so the auto plan shares small's configs)."""
    from bnopt.reproduce import preset_of

    for device in ("auto", "cpu"):
        hydra = resolve(make_cfg(["scale=auto", f"device={device}", "logger=none"])).scale.name
        assert preset_of("auto", [f"device={device}"]) == hydra
    assert preset_of("auto") == resolve(make_cfg(["scale=auto", "logger=none"])).scale.name
    assert preset_of("auto", ["device=cpu"]) == "small" and preset_of("paper", ["device=cpu"]) == "paper"


def test_keys_of_your_own_go_under_extra_and_are_part_of_the_run_id():
    """`+extra.*` is the one namespace for keys of your own (configs/train.yaml): code that reads one may
    train differently, so it is part of the run id; without one the id is unchanged."""
    assert rid("+extra.note=a") != rid() and rid("+extra.note=a") != rid("+extra.note=b")
    assert resolve(make_cfg([*SMOKE_VGG, "+extra.note=a"])).extra.note == "a"


def test_interpolations_are_parsed_once_and_bad_ones_still_fail():
    """`resolvers.cache_interpolation_parsing`: a second resolution of the same config parses nothing and gives
    the same values; a malformed interpolation raises on every use, not once."""
    import omegaconf.base
    from omegaconf import OmegaConf
    from omegaconf.errors import GrammarParseError

    from bnopt.resolvers import register_resolvers

    register_resolvers()
    parse = omegaconf.base.parse
    assert parse.cache_info  # the cached parser is the one OmegaConf's nodes call
    first = resolve(make_cfg(["model=vgg16_bn", "optim.lr=0.3"]))
    misses = parse.cache_info().misses
    again = resolve(make_cfg(["model=vgg16_bn", "optim.lr=0.3"]))
    assert parse.cache_info().misses == misses and again == first
    for _ in range(2):
        with pytest.raises(GrammarParseError):
            OmegaConf.create({"a": "${oops"})
