"""The one registry of runs: configs/experiment/*.yaml, one Hydra sweep per figure (or figure half).

Each file declares `figure`, `claims` and its sweep (`hydra.sweeper.params`, `hydra.mode: MULTIRUN`).
Every sweep includes `seed`: `seed_group` (claims | dln | single) picks how many seeds from the scale
preset's `seeds:` (configs/_scale_preset.yaml), through `${bnopt.seeds:...}` in the sweep itself, so
`bnopt-train experiment=fig1 scale=small` sweeps them too. A `seed=` override (`seed=0`, `seed=0,1`,
`seeds(n)` here) replaces it.
Everything that needs to know which runs a figure or a claim rests on reads it from here: `make
reproduce` / `make plan`, the figures, the claim checks, the notebooks and the tests.

    from bnopt import experiments
    experiments.registry()["fig1"].sweep(["scale=small"])   # override lists, expanded by Hydra
    experiments.for_figure("fig3")                         # [fig3_ics_vgg, fig3_ics_dln]
    experiments.pairs("fig1")                              # [(model, lr), ...] of the sweep
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache

import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from .config import CONFIG_DIR, ConfigError, resolve
from .resolvers import seed_list

EXPERIMENT_DIR = CONFIG_DIR / "experiment"


@dataclass(frozen=True)
class Experiment:
    name: str
    figure: str
    claims: tuple[str, ...]
    title: str  # the file's first comment line
    params: tuple[tuple[str, str], ...]  # the sweep but the seed: (key, comma-separated values) as Hydra reads them
    seed_group: str = "single"  # which of the scale preset's `seeds:` counts this experiment sweeps

    def seeds(self, extra: list[str] | tuple[str, ...] = ()) -> int:
        """How many seeds the sweep has by default at the scale `extra` chooses (scale=small, ...)."""
        return default_seeds(self.name, tuple(o for o in extra if not _is_sweep(o)))

    def sweep(self, extra: list[str] | tuple[str, ...] = ()) -> list[list[str]]:
        """One override list per run, expanded by Hydra's own sweeper (same order as `bnopt-train`). The
        seed comes last in the sweep (as in the files); a `seed=` in `extra` replaces the default."""
        seed = [] if any(_key(o) == "seed" for o in extra) else [f"seed={seed_values(self.seeds(extra))}"]
        params = [f"{k}={v}" for k, v in self.params] + seed
        return [[f"experiment={self.name}", *o] for o in expand(params + list(extra))]

    @property
    def command(self) -> str:
        return f"bnopt-train experiment={self.name}"


def seed_values(n: int) -> str:
    """`0,1,...,n-1`, the sweep value of n seeds (as `${bnopt.seeds:n}` in the experiment files)."""
    if int(n) < 1:
        raise ConfigError(f"the number of seeds must be at least 1, not {n}")
    return seed_list(n)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _is_sweep(override: str) -> bool:
    return OverridesParser.create().parse_overrides([override])[0].is_sweep_override()


@cache
def default_seeds(name: str, extra: tuple[str, ...] = ()) -> int:
    """The experiment's seed count at the scale `extra` chooses: scale.seeds.<seed_group>."""
    cfg = compose_run([f"experiment={name}", *extra])
    return int(cfg.scale.seeds[cfg.seed_group])


def expand(overrides: list[str]) -> list[list[str]]:
    """The runs of a sweep (`model=a,b optim.lr=0.1,0.5`), one override list each, as Hydra's basic
    sweeper expands them (later overrides of the same key win, as on the command line)."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [job for batch in BasicSweeper.split_arguments(parsed, max_batch_size=None) for job in batch]


def _figure_key(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name.split("_")[0] if ch.isdigit())
    return (int(digits) if digits else 10**6, name)


@cache
def registry() -> dict[str, Experiment]:
    """Every experiment config, in figure order."""
    out = {}
    for path in sorted(EXPERIMENT_DIR.glob("*.yaml"), key=lambda p: _figure_key(p.stem)):
        text = path.read_text()
        d = yaml.safe_load(text) or {}
        sweep = ((d.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
        title = next(
            (ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#") and "@package" not in ln),
            path.stem,
        )
        out[path.stem] = Experiment(
            path.stem,
            str(d.get("figure") or path.stem),
            tuple(d.get("claims") or ()),
            title,
            tuple((str(k), str(v)) for k, v in sweep.items() if k != "seed"),
            str(d.get("seed_group") or "single"),
        )
    return out


def figures() -> list[str]:
    """The figures the registry declares, in paper order."""
    return list(dict.fromkeys(e.figure for e in registry().values()))


def for_figure(figure: str) -> list[Experiment]:
    return [e for e in registry().values() if e.figure == figure]


def for_claim(claim: str) -> list[Experiment]:
    return [e for e in registry().values() if claim in e.claims]


def get(name: str) -> Experiment:
    reg = registry()
    if name not in reg:
        raise ConfigError(f"unknown experiment {name!r}; choose one of {', '.join(reg)}")
    return reg[name]


def compose_run(overrides: list[str]) -> DictConfig:
    """The composed (unresolved) config of one run, as `bnopt-train <overrides>` would see it.

    Hydra composes in two steps: it merges the defaults list the group choices pick (model=, scale=,
    experiment=, ...), then sets the value overrides (optim.lr=, seed=, paths.results=) on the merged
    config. The first step is most of the cost (0.3-0.4 s a run, measured on 2 busy cores) and a plan repeats it for
    every seed and results folder of the same choices, so it is cached per set of group choices; the
    second is Hydra's own step, on a copy. Anything else (+key, ~key, a sweep) takes Hydra's whole path."""
    groups = tuple(o for o in overrides if _is_group_override(o))
    values = [o for o in overrides if not _is_group_override(o)]
    parsed = OverridesParser.create().parse_overrides(values)
    if any(o.is_sweep_override() or o.is_add() or o.is_force_add() or o.is_delete() for o in parsed):
        return copy.deepcopy(_compose(tuple(overrides)))
    cfg = copy.deepcopy(_compose(groups))
    ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
    return cfg


@cache
def _compose(overrides: tuple[str, ...]) -> DictConfig:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


# the config groups: a folder of configs/ (model, scale, experiment, ...) or a path into one (hydra/launcher)
_GROUPS = frozenset(p.name for p in CONFIG_DIR.iterdir() if p.is_dir())


def _is_group_override(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return "/" in key or "@" in key or key in _GROUPS or key.startswith("hydra")


@cache
def resolved(overrides: tuple[str, ...]) -> DictConfig:
    """The resolved config of one run (cached: plans and figures ask for the same runs repeatedly)."""
    return resolve(compose_run(list(overrides)))


def runs(name: str, extra: tuple[str, ...] = ()) -> list[DictConfig]:
    """The resolved config of every run of one experiment's sweep (with extra overrides, e.g. scale=)."""
    return [resolved(tuple(o)) for o in get(name).sweep(list(extra))]


def init_scales(name: str) -> list[float]:
    """The `model.init_scale` values of the sweep, in sweep order (B3 sweeps them; others have only 1.0)."""
    return list(dict.fromkeys(float(c.model.init_scale) for c in runs(name, ("scale=smoke",))))


def batch_points(name: str) -> list[tuple[str, float, int]]:
    """(model, lr, batch) of every run of the sweep, in sweep order (B5 sweeps the batch, the LR follows it)."""
    return list(
        dict.fromkeys((c.model.name, float(c.optim.lr), int(c.scale.batch_size)) for c in runs(name, ("scale=smoke",)))
    )


def pairs(name: str) -> list[tuple[str, float]]:
    """(model, lr) of every run of the sweep, in sweep order (the same at every scale)."""
    return list(dict.fromkeys((c.model.name, float(c.optim.lr)) for c in runs(name, ("scale=smoke",))))
