"""What VGG and the DLN share: numbered blocks (weight layer -> norm -> activation) and Glorot init."""

from __future__ import annotations

from torch import nn


class Block(nn.Module):
    """One numbered layer: weight layer -> norm -> activation. Probes address `layer` and `norm`."""

    def __init__(self, layer: nn.Module, norm: nn.Module, act: nn.Module):
        super().__init__()
        self.layer, self.norm, self.act = layer, norm, act

    def forward(self, x):
        return self.act(self.norm(self.layer(x)))


class NumberedNet(nn.Module):
    """A network whose layers the paper numbers #1..#n (1-based); subclasses fill `self.blocks`."""

    blocks: list[Block]

    def layer(self, k: int) -> Block:
        if not 1 <= k <= len(self.blocks):
            raise IndexError(f"{type(self).__name__} has layers #1..#{len(self.blocks)}, not #{k}")
        return self.blocks[k - 1]

    @property
    def num_layers(self) -> int:
        return len(self.blocks)


INITS = {"glorot": nn.init.xavier_uniform_, "orthogonal": nn.init.orthogonal_}  # model.init


def init_weights(model: nn.Module, kind: str = "glorot", scale: float = 1.0) -> None:
    """Every conv and linear weight drawn by `kind` (model.init: glorot = Xavier uniform, the paper; orthogonal =
    a random orthogonal matrix, a conv's flattened to out x in*k*k) with gain `scale` (model.init_scale), zero
    biases."""
    if kind not in INITS:
        raise ValueError(f"unknown model.init {kind!r}; choose one of {', '.join(INITS)}")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            INITS[kind](m.weight, gain=scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
