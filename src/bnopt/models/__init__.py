"""Networks of the study. `build_model(cfg.model, num_classes)` is the one constructor the train loop uses."""

from __future__ import annotations

from .blocks import INITS, Block, NumberedNet
from .dln import DLN
from .norms import NORMS, LpNorm, NoisyBatchNorm, make_norm, replay_noise, set_noise_generator
from .vgg import VGG

FAMILIES = ("vgg", "dln")

__all__ = [
    "DLN",
    "VGG",
    "Block",
    "NumberedNet",
    "NORMS",
    "FAMILIES",
    "INITS",
    "LpNorm",
    "NoisyBatchNorm",
    "make_norm",
    "replay_noise",
    "set_noise_generator",
    "build_model",
]


def build_model(model_cfg, num_classes: int = 10):
    if model_cfg.family == "vgg":
        return VGG(model_cfg.norm, float(model_cfg.width), num_classes, bool(model_cfg.bias), model_cfg)
    if model_cfg.family == "dln":
        return DLN(model_cfg.norm, int(model_cfg.depth), int(model_cfg.dim), bool(model_cfg.bias), model_cfg)
    raise ValueError(f"unknown model family {model_cfg.family!r}; choose one of {', '.join(FAMILIES)}")
