"""The paper's deep linear network: 25 fully connected dim x dim layers, no non-linearity."""

from __future__ import annotations

from torch import nn

from .blocks import Block, NumberedNet, init_weights
from .norms import make_norm


class DLN(NumberedNet):
    family = "dln"

    def __init__(self, norm: str = "none", depth: int = 25, dim: int = 10, bias: bool = False, norm_cfg=None):
        super().__init__()
        blocks = []
        for k in range(1, depth + 1):
            hidden = k < depth  # the output layer is not normalised
            layer_norm = make_norm(norm, dim, 1, norm_cfg or {}) if hidden else nn.Identity()
            blocks.append(Block(nn.Linear(dim, dim, bias=bias), layer_norm, nn.Identity()))
        self.net = nn.Sequential(*blocks)
        self.blocks = list(blocks)
        cfg = norm_cfg or {}
        init_weights(self, str(cfg.get("init", "glorot")), float(cfg.get("init_scale", 1.0)))

    def forward(self, x):
        return self.net(x)
