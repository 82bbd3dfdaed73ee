"""Turning a composed Hydra config into a resolved, validated run config and its run id.

- Every derived value (the scale preset's per-family numbers, scale=auto, VGG width, probe cadences,
  layers and step sizes) is an interpolation or a `bnopt.*` resolver inside the config itself
  (bnopt.resolvers), so `bnopt-train ... --cfg job --resolve` shows exactly what a run uses.
- `compose`: the resolved config of a run's overrides, as `bnopt-train <overrides>` composes it.
- `resolve`: the composed config with every interpolation resolved (nothing is filled in here). Both
  register the `bnopt.*` resolvers first (idempotent); importing this module registers nothing.
- `validate`: every bad value gets one `ConfigError` line, before any data is read or anything written.
- `run_id`: a short hash of `identity(cfg)`: every resolved value that changes what is trained or
  recorded, and nothing else (paths, logger, device, experiment names).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .data import CIFAR_TRAIN_SIZE
from .models import FAMILIES, INITS, NORMS
from .probes import check_config as check_probes
from .resolvers import CONFIG_DIR, register_resolvers

# what scale.name resolves to (auto -> paper or small), the larger first: long is small's width at the paper's steps
SCALES = ("paper", "long", "small", "smoke")
DATASETS = ("cifar10", "synthetic", "gaussian_linear")
SOURCES = ("auto", "npz", "torchvision", "synthetic", "generated")
SCALE_KEYS = ("steps", "batch_size", "eval_every", "ckpt_every")
LOGGERS = ("wandb", "none")
WANDB_MODES = ("offline", "online", "disabled")
DATA_FOR_FAMILY = {"vgg": ("cifar10", "synthetic"), "dln": ("gaussian_linear",)}
LOSS_NORMS = ("sum", "half_sum", "mean")  # model.loss_norm of the DLN (losses.regression_loss)
PRECISIONS = ("fp32", "bf16")  # train.precision; fp16 is left out: it needs loss scaling


class ConfigError(Exception):
    """A bad config value; the message is the one line shown to the user."""


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def compose(overrides: list[str]) -> DictConfig:
    """The resolved `train` config of these overrides, composed by Hydra's compose API from configs/."""
    register_resolvers()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return resolve(hydra_compose("train", overrides=list(overrides)))


def resolve(cfg: DictConfig) -> DictConfig:
    """A copy of cfg with every interpolation and resolver evaluated (the values the run uses)."""
    register_resolvers()
    try:
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    except (OmegaConfBaseException, KeyError, ValueError) as e:
        msg = str(e).splitlines()[0]
        raise ConfigError(f"config does not resolve: {msg}") from None
    if cfg.scale.name not in SCALES:
        raise ConfigError(f"unknown scale {cfg.scale.name!r}; choose one of {', '.join(SCALES)} or auto")
    if cfg.model.get("family") not in FAMILIES:
        raise ConfigError(f"unknown model family {cfg.model.get('family')!r}; choose one of {', '.join(FAMILIES)}")
    return cfg


def validate(cfg: DictConfig) -> None:
    m, d, o, s = cfg.model, cfg.data, cfg.optim, cfg.scale
    if m.norm not in NORMS:
        raise ConfigError(f"unknown model.norm {m.norm!r}; choose one of {', '.join(NORMS)}")
    if m.family == "dln" and m.get("loss_norm", "sum") not in LOSS_NORMS:
        raise ConfigError(f"unknown model.loss_norm {m.get('loss_norm')!r}; choose one of {', '.join(LOSS_NORMS)}")
    if d.name not in DATASETS:
        raise ConfigError(f"unknown data {d.name!r}; choose one of {', '.join(DATASETS)}")
    if d.name not in DATA_FOR_FAMILY[m.family]:
        raise ConfigError(f"model {m.name} trains on data {' or '.join(DATA_FOR_FAMILY[m.family])}, not {d.name}")
    if d.source not in SOURCES:
        raise ConfigError(f"unknown data.source {d.source!r}; choose one of {', '.join(SOURCES[:3])}")
    if d.name == "cifar10" and d.source in ("synthetic", "generated"):
        raise ConfigError(
            f"data.source={d.source} is not a CIFAR-10 source (auto, npz, torchvision); "
            "for the tiny test data use data=synthetic"
        )
    if o.name != "sgd":
        raise ConfigError(f"unknown optimiser {o.name!r}; the paper uses plain SGD (optim=sgd)")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {cfg.seed!r}")
    _positive("optim.lr", o.lr)
    if o.momentum < 0 or o.weight_decay < 0:
        raise ConfigError("optim.momentum and optim.weight_decay must be >= 0")
    _positive("model.width", m.width)
    _positive("model.init_scale", m.get("init_scale", 1.0))
    if m.get("init", "glorot") not in INITS:
        raise ConfigError(f"unknown model.init {m.get('init')!r}; choose one of {', '.join(INITS)}")
    for key in SCALE_KEYS:
        _positive(f"scale.{key}", s[key], integer=True)
    n_train = dataset_size(cfg)
    if s.batch_size > n_train:
        raise ConfigError(f"scale.batch_size={s.batch_size} is larger than the training set ({n_train})")
    if d.name == "cifar10" and d.source in ("npz", "torchvision"):
        root = Path(os.environ.get("BNOPT_DATA") or d.root) if d.source == "npz" else Path(d.root)
        if d.source == "npz" and not root.is_dir():
            raise ConfigError(f"data path {root} does not exist (data.source=npz; set BNOPT_DATA or data.root)")
    if d.name != "gaussian_linear" and d.get("augment") not in (True, False):
        raise ConfigError(f"data.augment must be true or false, got {d.get('augment')!r}")
    t = cfg.get("train") or {}
    if t.get("precision", "fp32") not in PRECISIONS:
        raise ConfigError(f"unknown train.precision {t.get('precision')!r}; choose one of {', '.join(PRECISIONS)}")
    if t.get("tf32", True) not in (True, False):
        raise ConfigError(f"train.tf32 must be true or false, got {t.get('tf32')!r}")
    if cfg.logger.name not in LOGGERS:
        raise ConfigError(f"unknown logger {cfg.logger.name!r}; choose one of {', '.join(LOGGERS)}")
    if cfg.logger.name == "wandb" and cfg.logger.mode not in WANDB_MODES:
        raise ConfigError(f"unknown logger.mode {cfg.logger.mode!r}; choose one of {', '.join(WANDB_MODES)}")
    try:
        check_probes(cfg)
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None
    try:
        device = pick_device(cfg.device)
    except RuntimeError as e:
        raise ConfigError(f"bad device {cfg.device!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {cfg.device!r} asked for, but CUDA is not available")
    if t.get("precision") == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.precision=bf16 asked for, but this GPU does not support bfloat16; use fp32")


def _positive(name: str, value, integer: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not value > 0 or value != value or value == float("inf"):
        kind = "a positive integer" if integer else "a positive finite number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")


def dataset_size(cfg: DictConfig) -> int:
    d = cfg.data
    if d.name == "gaussian_linear":
        return int(d.n_samples)
    if d.name == "synthetic" or d.source == "synthetic":
        return int(d.n_train)
    return CIFAR_TRAIN_SIZE


# Top-level keys that say where a run is stored, how it is shown or which figure asked for it: not
# what it trains or records, so not part of the run id. `claims` is no longer set (the studies declare the
# sweeps they read), but every run recorded before holds it: left out, their recorded configs keep their ids.
NOT_IDENTITY = ("paths", "logger", "device", "experiment_name", "figure", "claims", "seed_group", "hydra")
# Within groups: locations, download switches, presentation and memory layout (same numbers).
NOT_IDENTITY_IN = {"data": ("root", "download"), "model": ("channels_last",), "probes": ("name",)}
# The scale preset enters only through the numbers a run uses (probe cadences are in probes.*.every;
# checkpoints do not change records), so the same run reached through two presets is one run.
SCALE_IDENTITY = ("steps", "batch_size", "eval_every")
# Keys added after runs were recorded, with the value those runs used: at that value a key is left out of
# the id, so those runs keep their ids; any other value (train.precision=bf16, train.tf32=false) is in it.
# model.loss_norm (DLN only): "sum" is the loss every DLN run used before the key existed.
# model.init_scale: 1.0 (plain Glorot) is what every run used before the key existed; model.init: glorot likewise.
# probes.landscape.dtype / norm_params (issue 25's DLN ablation): float32 over every parameter, as every landscape
# record before them. Nested groups nest here.
IDENTITY_DEFAULTS = {
    "train": {"precision": "fp32", "tf32": True},
    "model": {"loss_norm": "sum", "init_scale": 1.0, "init": "glorot"},
    "probes": {"landscape": {"dtype": "float32", "norm_params": True}},
}


def _without_defaults(values: dict, defaults: dict) -> dict:
    """`values` less every key (at any depth of `defaults`) that holds its default; a group left empty goes."""
    out = {}
    for key, value in values.items():
        default = defaults.get(key, _NO_DEFAULT)
        if isinstance(default, dict) and isinstance(value, dict):
            value = _without_defaults(value, default)
            if not value:
                continue
        elif default is not _NO_DEFAULT and default == value:
            continue
        out[key] = value
    return out


_NO_DEFAULT = object()


def identity(cfg: DictConfig) -> dict:
    """What determines the numbers a run trains and records: the resolved config minus NOT_IDENTITY (and
    minus IDENTITY_DEFAULTS' keys at their old value)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    for key in NOT_IDENTITY:
        c.pop(key, None)
    for group, keys in NOT_IDENTITY_IN.items():
        for key in keys:
            c.get(group, {}).pop(key, None)
    c["scale"] = {k: c["scale"][k] for k in SCALE_IDENTITY}
    c = _without_defaults(c, IDENTITY_DEFAULTS)
    if c["data"].get("source") in ("auto", "npz", "torchvision"):
        c["data"]["source"] = "cifar10-files"  # the same images whichever way they reach us
    return c


def run_id(cfg: DictConfig) -> str:
    blob = json.dumps(identity(cfg), sort_keys=True, default=str)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
    return f"{cfg.model.name}-lr{cfg.optim.lr:g}-{digest}"
