"""C6: BN makes the loss landscape smoother (Fig 4, 11; docs/PROTOCOL.md section 2).

Reads the landscape probe of VGG16 with and without BN at LR 0.1 (Fig 4's runs). Per seed: each net's
median over its measured steps of the loss range along the gradient, the gradient predictiveness (max
||grad diff||) and the effective beta; statistics: log10(BN / standard) of each median (bnopt.measures).
"""

from bnopt.measures import SMOOTHER, smoothness_lines, smoothness_seed, smoothness_statistics
from bnopt.readers import VGG_LR
from bnopt.studies import Study
from bnopt.verdicts import Tests


class C6(Study):
    id = "C6"
    claim = "BN makes the loss landscape smoother: loss variation, gradient predictiveness, effective beta"
    paper = (
        "gradient predictiveness: standard peaks ~250, BN mostly < 30; effective beta: BN ~20 and flat, "
        "standard 5-45 (Fig 4)"
    )
    sweeps = ("fig4",)
    figures = ("fig4", "fig11")
    statistics = smoothness_statistics()
    rule = Tests(SMOOTHER)  # BN lower on each of the three medians

    def measure(self, res, scale, seed):
        return smoothness_seed(res, "vgg16", "vgg16_bn", VGG_LR, scale, seed)

    def lines(self, table):
        return smoothness_lines(table, "vgg16", "vgg16_bn", VGG_LR)
