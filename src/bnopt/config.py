"""Turning a composed Hydra config into a resolved, validated run config and its run id.

- `resolve`: scale=auto becomes paper (CUDA) or small (CPU); the scale's per-family values
  (scale.vgg / scale.dln) fill scale.steps etc. unless set explicitly; model.width comes from the
  scale unless set explicitly; interpolations are resolved.
- `validate`: every bad value gets one `ConfigError` line, before any data is read or anything written.
- `run_id`: a short hash of the scientific config, so the same run asked twice is the same folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .data import CIFAR_TRAIN_SIZE
from .models import FAMILIES, NORMS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
SCALES = ("paper", "small", "smoke", "auto")
DATASETS = ("cifar10", "synthetic", "gaussian_linear")
SOURCES = ("auto", "torchvision", "npz", "synthetic", "generated")
SCALE_KEYS = ("steps", "batch_size", "eval_every", "ckpt_every")
LOGGERS = ("wandb", "none")
WANDB_MODES = ("offline", "online", "disabled")
DATA_FOR_FAMILY = {"vgg": ("cifar10", "synthetic"), "dln": ("gaussian_linear",)}


class ConfigError(Exception):
    """A bad config value; the message is the one line shown to the user."""


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def resolve(cfg: DictConfig) -> DictConfig:
    """A resolved copy of cfg with concrete scale values; `scale.name` keeps the preset's name."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    if cfg.scale.name not in SCALES:
        raise ConfigError(f"unknown scale {cfg.scale.name!r}; choose one of {', '.join(SCALES)}")
    if cfg.model.get("family") not in FAMILIES:
        raise ConfigError(f"unknown model family {cfg.model.get('family')!r}; choose one of {', '.join(FAMILIES)}")
    if cfg.scale.name == "auto":
        device = pick_device(cfg.device) if cfg.device in ("auto", "cpu") or "cuda" in cfg.device else None
        preset = "paper" if device is not None and device.type == "cuda" else "small"
        base = OmegaConf.load(CONFIG_DIR / "scale" / f"{preset}.yaml")
        explicit = {k: cfg.scale[k] for k in SCALE_KEYS if cfg.scale.get(k) is not None}
        cfg.scale = OmegaConf.merge(base, explicit)
        cfg.scale.auto_from = "auto"
    family = cfg.model.family
    per_family = cfg.scale.get(family) or {}
    for key in SCALE_KEYS:
        if cfg.scale.get(key) is None:
            cfg.scale[key] = per_family.get(key)
    if cfg.probes.get("every") is None:  # probe cadence follows the scale preset
        cfg.probes.every = per_family.get("probe_every", 0)
    if cfg.model.get("width") is None:
        cfg.model.width = per_family.get("width", 1.0)
    return cfg


def validate(cfg: DictConfig) -> None:
    m, d, o, s = cfg.model, cfg.data, cfg.optim, cfg.scale
    if m.norm not in NORMS:
        raise ConfigError(f"unknown model.norm {m.norm!r}; choose one of {', '.join(NORMS)}")
    if d.name not in DATASETS:
        raise ConfigError(f"unknown data {d.name!r}; choose one of {', '.join(DATASETS)}")
    if d.name not in DATA_FOR_FAMILY[m.family]:
        raise ConfigError(f"model {m.name} trains on data {' or '.join(DATA_FOR_FAMILY[m.family])}, not {d.name}")
    if d.source not in SOURCES:
        raise ConfigError(f"unknown data.source {d.source!r}; choose one of {', '.join(SOURCES[:4])}")
    if o.name != "sgd":
        raise ConfigError(f"unknown optimiser {o.name!r}; the paper uses plain SGD (optim=sgd)")
    _positive("optim.lr", o.lr)
    if o.momentum < 0 or o.weight_decay < 0:
        raise ConfigError("optim.momentum and optim.weight_decay must be >= 0")
    _positive("model.width", m.width)
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
    if cfg.logger.name not in LOGGERS:
        raise ConfigError(f"unknown logger {cfg.logger.name!r}; choose one of {', '.join(LOGGERS)}")
    if cfg.logger.name == "wandb" and cfg.logger.mode not in WANDB_MODES:
        raise ConfigError(f"unknown logger.mode {cfg.logger.mode!r}; choose one of {', '.join(WANDB_MODES)}")
    from .probes import check_config as check_probes  # probes import models; keep config light at import

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


def scientific_config(cfg: DictConfig) -> dict:
    """What determines the numbers a run produces. Location and logging settings are left out, and the
    scale enters through its resolved numbers, so the same run reached through two presets is one run."""
    data = {k: v for k, v in OmegaConf.to_container(cfg.data).items() if k not in ("root", "download")}
    if data.get("source") in ("auto", "npz", "torchvision"):
        data["source"] = "cifar10-files"  # the same images whichever way they reach us
    scale = {k: cfg.scale[k] for k in ("steps", "batch_size", "eval_every")}
    model = {k: v for k, v in OmegaConf.to_container(cfg.model).items() if k != "channels_last"}
    return {
        "model": model,
        "data": data,
        "optim": OmegaConf.to_container(cfg.optim),
        "scale": scale,
        "probes": OmegaConf.to_container(cfg.probes),
        "seed": cfg.seed,
    }


def run_id(cfg: DictConfig) -> str:
    blob = json.dumps(scientific_config(cfg), sort_keys=True, default=str)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
    return f"{cfg.model.name}-lr{cfg.optim.lr:g}-{digest}"
