"""CIFAR VGG16 as the paper uses it (docs/PROTOCOL.md, Appendix A.1): conv -> norm -> ReLU, Glorot init."""

from __future__ import annotations

from torch import nn

from .blocks import Block, NumberedNet, init_weights
from .norms import make_norm

# 13 conv widths with max-pools ("M"); conv layer #k of the paper is the k-th number here (1-based).
VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class VGG(NumberedNet):
    family = "vgg"

    def __init__(
        self,
        norm: str = "none",
        width: float = 1.0,
        num_classes: int = 10,
        bias: bool = True,
        norm_cfg=None,
        plan=VGG16_PLAN,
    ):
        super().__init__()
        stages: list[nn.Module] = []
        blocks: list[Block] = []
        c_in = 3
        for item in plan:
            if item == "M":
                stages.append(nn.MaxPool2d(2))
                continue
            c_out = scaled(item, width)
            conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)
            block = Block(conv, make_norm(norm, c_out, 2, norm_cfg or {}), nn.ReLU(inplace=True))
            stages.append(block)
            blocks.append(block)
            c_in = c_out
        self.features = nn.Sequential(*stages)
        self.blocks = blocks  # plain list: the modules are registered once, in `features`
        self.classifier = nn.Linear(c_in, num_classes)
        cfg = norm_cfg or {}
        init_weights(self, str(cfg.get("init", "glorot")), float(cfg.get("init_scale", 1.0)))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))
