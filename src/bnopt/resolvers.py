"""OmegaConf resolvers: every derived config value is computed inside the composed config.

So `bnopt-train ... --cfg job --resolve` prints exactly the values a run trains with and its run id
hashes; no Python fills in config after composition. `register_resolvers()` makes them known to OmegaConf;
whatever composes or resolves a config calls it first (config.compose, config.resolve, the bnopt-train
command), so importing a module changes no global state.

    ${bnopt.get:${scale.vgg},steps}          a key of a mapping (works on a resolver's output too)
    ${bnopt.first:${probes.every},20}        the first argument that is not null
    ${bnopt.auto_scale:${device}}            paper on CUDA, small on a CPU
    ${bnopt.preset:small,vgg}                a key of configs/scale/<preset>.yaml (a family block, seeds, ...)
    ${bnopt.probe_default:landscape.etas,vgg} the paper's default of a probe setting for a model family
    ${bnopt.add:${seed},2}                   integer sum
    ${bnopt.div:51200,${scale.batch_size}}  exact integer quotient (B5: steps = images / batch)
    ${bnopt.linear_lr:0.1,128,${scale.batch_size}}  an LR scaled linearly with the batch (B5)
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

import omegaconf._utils
import omegaconf.base
import omegaconf.grammar_parser
import torch
from omegaconf import OmegaConf

from .probes import DEFAULT_ETAS
from .probes import DEFAULT_LAYERS as PROBE_LAYERS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
# The keys every scale preset shares. At the config root, not in configs/scale/, so that Hydra's --help
# does not offer it as a scale and `scale=` cannot pick it (a private base has no name of its own).
SCALE_BASE = CONFIG_DIR / "_scale_preset.yaml"


def get(mapping, key: str):
    if isinstance(mapping, int) and not isinstance(mapping, bool):
        return mapping  # one number for every key: scale.vgg.probe_every=5 sets every probe's cadence
    if mapping is None or key not in mapping:
        raise KeyError(f"no {key!r} in {OmegaConf.to_container(mapping) if mapping is not None else None}")
    return mapping[key]


def first(*values):
    return next((v for v in values if v is not None), None)


def auto_scale(device: str) -> str:
    """The preset `scale=auto` stands for: the paper's protocol where a GPU runs it, small on a CPU."""
    wants_cuda = device == "auto" or str(device).startswith("cuda")
    return "paper" if wants_cuda and torch.cuda.is_available() else "small"


def preset_name(scale: str | None, device: str = "auto") -> str | None:
    """The preset a scale names: `auto` is the one it stands for on this machine and device, any other is itself."""
    return auto_scale(device) if scale == "auto" else scale


@cache
def _preset_file(name: str) -> dict:
    """configs/scale/<name>.yaml over the base every preset shares (configs/_scale_preset.yaml), as its
    defaults list merges them: keys a preset does not set itself (seeds at paper) come from the base."""
    path = CONFIG_DIR / "scale" / f"{name}.yaml"
    if name.startswith("_") or name == "auto" or not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml") if p.stem != "auto")
        raise ValueError(f"unknown scale {name!r}; choose one of {', '.join(known)} or auto")
    merged = OmegaConf.to_container(OmegaConf.merge(OmegaConf.load(SCALE_BASE), OmegaConf.load(path)), resolve=False)
    merged.pop("defaults", None)
    return merged


def preset(name: str, key: str):
    """A key of a preset (a family block vgg/dln, seeds, batch_study): scale=auto reads every key this way."""
    value = _preset_file(name)[key]
    # containers go back as OmegaConf nodes so that `--cfg job --resolve` can resolve them in place
    return OmegaConf.create(value) if isinstance(value, (dict, list)) else value


def probe_default(setting: str, family: str):
    """The paper's layers and step sizes per model family, defined once next to the probe code."""
    table = {"landscape.etas": DEFAULT_ETAS, **{f"{probe}.layers": layers for probe, layers in PROBE_LAYERS.items()}}
    value = table[setting][family]
    return value if isinstance(value, str) else OmegaConf.create(list(value))  # a string: `all`


def seed_list(n) -> str:
    """`0,1,...,n-1`: the sweep value of `seed` for n seeds (configs/experiment/*.yaml)."""
    return ",".join(str(i) for i in range(int(n)))


def div(a, b) -> int:
    """a / b for integers that divide exactly: a run must see exactly the images its study fixes."""
    a, b = int(a), int(b)
    if b <= 0 or a % b:
        raise ValueError(f"{a} is not a whole multiple of {b}")
    return a // b


def linear_lr(lr, base_batch, batch) -> float:
    """The linear scaling rule (Goyal et al. 2017): lr at base_batch becomes lr * batch / base_batch."""
    return float(lr) * int(batch) / int(base_batch)


def add(a, b) -> int:
    return int(a) + int(b)


def mul(a, b) -> int:
    return int(a) * int(b)


RESOLVERS = {
    "get": get,
    "first": first,
    "auto_scale": auto_scale,
    "preset": preset,
    "probe_default": probe_default,
    "add": add,
    "mul": mul,
    "div": div,
    "linear_lr": linear_lr,
    "seeds": seed_list,
}


def register_resolvers() -> None:
    """Make every `bnopt.*` resolver known to OmegaConf, and its interpolation parsing cached
    (`cache_interpolation_parsing`); calling it again changes nothing."""
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(f"bnopt.{name}"):
            OmegaConf.register_new_resolver(f"bnopt.{name}", fn)
    cache_interpolation_parsing()


# the modules that call OmegaConf's interpolation parser by the name they imported (omegaconf 2.3)
_PARSE_USERS = (omegaconf.grammar_parser, omegaconf.base, omegaconf._utils)


def cache_interpolation_parsing() -> None:
    """Parse each interpolation string once per process. OmegaConf parses `${...}` with its ANTLR grammar
    every time it meets one, on assignment and on every resolution; a plan resolves 417 runs of the same ~20
    strings, and the parsing was 80% of resolving (profiled, docs/PERFORMANCE.md). A parse tree is only read
    by the resolver (its tokens keep their own input), so one tree serves every resolution; a string that
    fails to parse raises each time (lru_cache keeps no exception). Where omegaconf has moved its parser
    (another version), nothing changes."""
    parse = omegaconf.grammar_parser.parse
    if hasattr(parse, "cache_info"):
        return
    cached = lru_cache(maxsize=4096)(parse)
    for module in _PARSE_USERS:
        if getattr(module, "parse", None) is parse:
            module.parse = cached
