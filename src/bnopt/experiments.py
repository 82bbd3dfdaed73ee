"""The one registry of runs: configs/experiment/*.yaml, one Hydra sweep per figure (or figure half).

Each file declares `figure` and its sweep (`hydra.sweeper.params`, `hydra.mode: MULTIRUN`); which studies
read a sweep is declared by the studies (`sweeps` in experiments/*.py, bnopt.studies), not here.
Every sweep includes `seed`: `seed_group` (claims | dln | single) picks how many seeds from the scale
preset's `seeds:` (configs/_scale_preset.yaml), through `${bnopt.seeds:...}` in the sweep itself, so
`bnopt-train experiment=fig1 scale=small` sweeps them too. A `seed=` override (`seed=0`, `seed=0,1`,
`seeds(n)` here) replaces it.
Everything that needs to know which runs a figure or a study rests on reads it from here: `make
reproduce` / `make plan`, the figures, the studies, the notebooks and the tests.

    from bnopt import experiments
    experiments.registry()["fig1"].sweep(["scale=small"])   # override lists, expanded by Hydra
    experiments.for_figure("fig3")                         # [fig3_ics_vgg, fig3_ics_dln]
    experiments.pairs("fig1")                              # [(model, lr), ...] of the sweep
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from .config import CONFIG_DIR, ConfigError, resolve
from .resolvers import register_resolvers, seed_list

EXPERIMENT_DIR = CONFIG_DIR / "experiment"
# The folders our lookups search for config files, in Hydra's order: configs/, then the folder of
# `bnopt-train --config-dir DIR` (Hydra puts it after the primary folder: a file of configs/ wins over a
# same-named one in DIR). Set only inside `config_dir()`, around bnopt-train's prechecks.
_search_dirs: tuple[Path, ...] = (CONFIG_DIR,)
# The one namespace for keys of one's own (`+extra.note=...`, configs/train.yaml); any other unknown key
# is refused.
EXTENSION = "extra"


@contextmanager
def config_dir(folder: str | Path | None) -> Iterator[None]:
    """Within: every lookup here (registry, group options, composition) also searches `folder`, as Hydra
    does for `--config-dir folder`. The caches below are keyed by the search folders, so nothing leaks."""
    global _search_dirs
    previous = _search_dirs
    if folder is not None:
        _search_dirs = (CONFIG_DIR, Path(folder).resolve())
    try:
        yield
    finally:
        _search_dirs = previous


def group_options(group: str) -> list[str]:
    """The public options of a config group (model, hydra/launcher, ...) in every search folder; a file
    whose name starts with `_` is private (none is left in our groups, but a --config-dir may have one)."""
    names = {p.stem for d in _search_dirs for p in (d / group).glob("*.yaml") if not p.stem.startswith("_")}
    return sorted(names)


def yaml_error_line(e: yaml.YAMLError, path: Path | str | None = None) -> str:
    """A YAML syntax error as one line naming the file and line (PyYAML's marks count lines from 0)."""
    mark = getattr(e, "problem_mark", None)
    where = str(path or (mark.name if mark else "a config file"))
    if mark is not None:
        where += f" line {mark.line + 1}"
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"{where}: YAML syntax error: {problem}"


def config_keys(cfg: DictConfig) -> set[str]:
    """Every key path of a composed config (optim.lr, scale.vgg.steps, ...), interpolations unresolved."""

    def walk(node, prefix: str) -> Iterator[str]:
        for key, value in node.items():
            yield prefix + str(key)
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")

    return set(walk(OmegaConf.to_container(cfg, resolve=False), ""))


def unknown_key_line(key: str, value: str, known: set[str]) -> str:
    """`no config key optim.lrr; did you mean optim.lr?`, or where to put a key of one's own."""
    nearest = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    if nearest and key.split(".")[0] != EXTENSION:
        return f"no config key {key}; did you mean {nearest[0]}?"
    own = key if key.split(".")[0] == EXTENSION else f"{EXTENSION}.{key}"
    return f"no config key {key} (a key of your own goes under {EXTENSION}: +{own}={value})"


def check_keys(overrides: list[str]) -> None:
    """ConfigError for the first override of one run that sets a key its config lacks: an unknown key
    (optim.lrr=0.1, which Hydra refuses too, with a hint to add it) or an added one (+foo=1, +optim.lrr=0.1,
    which Hydra accepts and which would then train under a new run id) outside the `extra` namespace."""
    known = None
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        key = o.key_or_group
        if is_group_override(o.input_line) or o.is_delete():
            continue  # group choices and deletions: Hydra checks them against what exists
        if o.is_add() and key.split(".")[0] == EXTENSION:
            continue
        if known is None:  # the keys depend on the group choices only (model=dln has model.loss_norm)
            known = config_keys(compose_run([g for g in overrides if is_group_override(g)]))
        if key in known or _below_a_value(key, known):
            continue  # (a + of a known key: Hydra says that it exists already)
        raise ConfigError(unknown_key_line(key, o.input_line.split("=", 1)[1], known))


def _below_a_value(key: str, known: set[str]) -> bool:
    """A key below a value that is not a mapping here (scale.vgg.steps under scale=auto, whose scale.vgg
    is an interpolation; a list index): Hydra decides."""
    parts = key.split(".")
    prefixes = (".".join(parts[:i]) for i in range(1, len(parts)))
    return any(p in known and not any(k.startswith(p + ".") for k in known) for p in prefixes)


@dataclass(frozen=True)
class Experiment:
    name: str
    figure: str
    title: str  # the file's first comment line
    params: tuple[tuple[str, str], ...]  # the sweep but the seed: (key, comma-separated values) as Hydra reads them
    seed_group: str = "single"  # which of the scale preset's `seeds:` counts this experiment sweeps

    def seeds(self, extra: list[str] | tuple[str, ...] = ()) -> int:
        """How many seeds the sweep has by default at the scale `extra` chooses (scale=small, ...). Composed
        with the sweep's first group choices (model=dln of fig3_ics_dln), so that an override of a key only
        those have (model.loss_norm=sum) composes."""
        choices = [f"{k}={v}" for k, v in self.params if is_group_override(f"{k}={v}")]
        first_choices = expand(choices)[0] if choices else []
        return default_seeds(self.name, (*first_choices, *(o for o in extra if not _is_sweep(o))))

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


def default_seeds(name: str, extra: tuple[str, ...] = ()) -> int:
    """The experiment's seed count at the scale `extra` chooses: scale.seeds.<seed_group>."""
    return _default_seeds(name, extra, _search_dirs)


@cache
def _default_seeds(name: str, extra: tuple[str, ...], search_dirs: tuple[Path, ...]) -> int:
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


def registry() -> dict[str, Experiment]:
    """Every experiment config, in figure order (with --config-dir's experiments: config_dir())."""
    return _registry(_search_dirs)


def _experiment_files(search_dirs: tuple[Path, ...]) -> list[Path]:
    files: dict[str, Path] = {}
    for folder in search_dirs:
        for path in (folder / "experiment").glob("*.yaml"):
            files.setdefault(path.stem, path)  # the first folder wins, as in Hydra's search
    return sorted(files.values(), key=lambda p: _figure_key(p.stem))


@cache
def _registry(search_dirs: tuple[Path, ...]) -> dict[str, Experiment]:
    out = {}
    for path in _experiment_files(search_dirs):
        text = path.read_text()
        try:
            d = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(yaml_error_line(e, path)) from None
        sweep = ((d.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
        title = next(
            (ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#") and "@package" not in ln),
            path.stem,
        )
        out[path.stem] = Experiment(
            path.stem,
            str(d.get("figure") or path.stem),
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
    groups = tuple(o for o in overrides if is_group_override(o)) + _search_path_overrides()
    values = [o for o in overrides if not is_group_override(o)]
    parsed = OverridesParser.create().parse_overrides(values)
    if any(o.is_sweep_override() or o.is_add() or o.is_force_add() or o.is_delete() for o in parsed):
        return copy.deepcopy(_compose(tuple(overrides) + _search_path_overrides()))
    cfg = copy.deepcopy(_compose(groups))
    ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
    return cfg


@cache
def _compose(overrides: tuple[str, ...]) -> DictConfig:
    register_resolvers()  # the composed config's `${bnopt.*}` values resolve when read (scale.seeds at scale=auto)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _search_path_overrides() -> tuple[str, ...]:
    """--config-dir's folder as Hydra's own `hydra.searchpath` puts it: after configs/, before the
    structured configs (where Hydra puts --config-dir)."""
    extra = [f"'file://{d.as_posix()}'" for d in _search_dirs[1:]]
    return (f"hydra.searchpath=[{','.join(extra)}]",) if extra else ()


@cache
def _groups(search_dirs: tuple[Path, ...]) -> frozenset[str]:
    """The config groups: a folder of configs/ or --config-dir (model, scale, experiment, ...)."""
    return frozenset(p.name for d in search_dirs for p in d.iterdir() if p.is_dir())


def is_group_override(override: str) -> bool:
    """A group choice (model=vgg16, hydra/launcher=joblib, +mygroup=x) or a Hydra setting (hydra.*), not a
    value of the run's config; a path into a group (hydra/launcher) counts too."""
    key = override.split("=", 1)[0].lstrip("+~")
    return "/" in key or "@" in key or key in _groups(_search_dirs) or key.startswith("hydra")


def resolved(overrides: tuple[str, ...]) -> DictConfig:
    """The resolved config of one run (cached: plans and figures ask for the same runs repeatedly)."""
    return _resolved(overrides, _search_dirs)


@cache
def _resolved(overrides: tuple[str, ...], search_dirs: tuple[Path, ...]) -> DictConfig:
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
