"""Where a report's runs sit against the paper's, and whether a claim's magnitude is comparable to the paper's
(issue 24, item 7; docs/PROTOCOL.md section 2, rules of 2026-12-07, "Regime").

At small scale the standard VGG ends at 46-50% train-subset accuracy at LR 0.1 with no train-test gap, where
the paper's reaches about 100%: C3's +21-point test accuracy gap (the paper's +3) then measures slower
optimisation, not generalisation. A verdict on such runs says whether an effect shows, not that it has the
paper's size. So every REPORT.md opens with these numbers, per network of Fig 1c (VGG16 and VGG16+BN at
LR 0.1) and Fig 5b (the DLN and DLN+BN at LR 1e-6), each read from all its finished seeds:

- VGG: final train-subset accuracy (`readers.final_train_acc`, the mean of the last 3 evaluations) and
  final test accuracy; the paper's: about 100% train accuracy for both by 15k steps, test about 80%
  (standard) and 83% (BN).
- DLN: final training loss (`readers.final_train_loss`) and k, the learned singular directions of the target
  (`dln_rank.learned_directions`); the paper's: loss about 1.6e3 (standard) and 5e2 (BN) at 10k steps.

The comparability rule (`RULE`) is declared once here; a study names the regime it rests on
(`bnopt.studies.Study.regime`: "vgg", "dln", "theory"), and `Regime.comparable` answers for it:

    from bnopt import regime
    r = regime.measure(res, "small")
    r.comparable(("vgg",))   # (False, "the standard VGG ends at 48% train accuracy, the paper's at about 100%")
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dln_rank import learned_directions
from .readers import DLN_LR, VGG_LR, Missing, diverged, final_eval, final_train_acc, final_train_loss
from .results import Results
from .studies import run_id_of, seeds_of

VGG, DLN, THEORY = "vgg", "dln", "theory"
REGIMES = (VGG, DLN, THEORY)


@dataclass(frozen=True)
class Net:
    """A network whose final numbers place a report's runs against the paper's."""

    model: str
    label: str  # as the report names it
    family: str  # VGG or DLN
    lr: float
    paper: dict  # quantity -> the paper's value (train_acc, test_acc; loss)
    paper_text: str


NETS = (
    Net("vgg16", "standard VGG", VGG, VGG_LR, {"train_acc": 1.0, "test_acc": 0.80},
        "train acc about 100% by 15k steps; test acc about 80% (Fig 1b/c)"),
    Net("vgg16_bn", "BN VGG", VGG, VGG_LR, {"train_acc": 1.0, "test_acc": 0.83},
        "train acc about 100% by 15k steps; test acc about 83% (Fig 1b/c)"),
    Net("dln", "standard DLN", DLN, DLN_LR, {"loss": 1.6e3}, "loss about 1.6e3 at 10k steps (Fig 5b)"),
    Net("dln_bn", "BN DLN", DLN, DLN_LR, {"loss": 5e2}, "loss about 5e2 at 10k steps (Fig 5b)"),
)  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """When a claim's magnitude is comparable to the paper's. Declared once (written 2026-12-07, before the
    small-scale seed 3-4 runs finished; docs/PROTOCOL.md section 2 quotes `sentence()`): VGG claims when both
    nets' mean final train-subset accuracy at LR 0.1 is at least `vgg_train_acc`; DLN claims when both nets'
    mean final losses at LR 1e-6 are within a factor `dln_factor` of the paper's; theory claims always."""

    vgg_train_acc: float = 0.90
    dln_factor: float = 3.0

    def net_ok(self, net: Net, mean: float) -> bool:
        """Whether one net's mean final number meets its half of the rule (NaN: no)."""
        if net.family == VGG:
            return bool(mean >= self.vgg_train_acc)
        paper = net.paper["loss"]
        return bool(paper / self.dln_factor <= mean <= paper * self.dln_factor)

    def sentence(self) -> str:
        return (
            "A claim's magnitude is comparable to the paper's when the regime it rests on is: VGG claims when both "
            f"nets' mean final train-subset accuracy at LR {fmt_lr(VGG_LR)} is at least "
            f"{100 * self.vgg_train_acc:.0f}%; DLN claims when both nets' mean final losses at LR {fmt_lr(DLN_LR)} "
            f"are within a factor {self.dln_factor:g} of the paper's; theory claims always."
        )


RULE = Rule()
KEY = {VGG: "train_acc", DLN: "loss"}  # the number a family's half of the rule reads


def fmt_loss(x: float) -> str:
    """A loss as the paper writes it: 9.1e3."""
    if x != x:
        return "n/a"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def fmt_lr(x: float) -> str:
    """A learning rate as the paper writes it: 0.1, 1e-6."""
    return f"{x:g}".replace("e-0", "e-")


def fmt_pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.0f}%"


@dataclass
class NetNumbers:
    """One net's final numbers per seed ({seed: {quantity: value}}), where they come from and how they fare."""

    net: Net
    per_seed: dict = field(default_factory=dict)
    missing: str = ""  # why there are none

    @property
    def seeds(self) -> list:
        return list(self.per_seed)

    def values(self, key: str) -> list[float]:
        return [float(row[key]) for row in self.per_seed.values() if key in row]

    def mean(self, key: str) -> float:
        vals = self.values(key)
        return float(np.mean(vals)) if vals else float("nan")

    def spread(self, key: str, show) -> str:
        """ "mean (min-max)" over seeds ("mean" for one seed; "n/a" for none)."""
        vals = self.values(key)
        if not vals:
            return "n/a"
        if len(vals) == 1:
            return show(vals[0])
        return f"{show(float(np.mean(vals)))} ({show(min(vals))}-{show(max(vals))})"

    @property
    def ok(self) -> bool | None:
        """This net's half of the rule; None without numbers."""
        if not self.per_seed:
            return None
        return RULE.net_ok(self.net, self.mean(KEY[self.net.family]))

    def cell(self) -> str:
        """Our final numbers in one table cell."""
        if not self.per_seed:
            return f"no runs ({self.missing})" if self.missing else "no runs"
        if self.net.family == VGG:
            return f"train-subset acc {self.spread('train_acc', fmt_pct)}; test acc {self.spread('test_acc', fmt_pct)}"
        text = f"loss {self.spread('loss', fmt_loss)}"
        ks = self.values("k")
        if ks:
            text += f"; k = {', '.join(str(int(k)) for k in ks)} learned directions (per seed)"
            text += f", optimal rank-k loss {self.spread('residual', fmt_loss)}"
        return text

    def shortfall(self) -> str:
        """Where it ends, in words (the verdict line's note)."""
        if self.net.family == VGG:
            return f"the {self.net.label} ends at {fmt_pct(self.mean('train_acc'))}"
        mean, paper = self.mean("loss"), self.net.paper["loss"]
        return f"the {self.net.label} ends at loss {fmt_loss(mean)}, {mean / paper:.2g}x the paper's {fmt_loss(paper)}"


@dataclass
class Regime:
    """The report's nets' final numbers and what they say of each regime's comparability."""

    nets: list[NetNumbers]

    def of(self, family: str) -> tuple[bool | None, str]:
        """(comparable, why not) of one regime: True/False by RULE, None when its runs are missing."""
        if family == THEORY:
            return True, ""
        if family not in REGIMES:
            raise ValueError(f"unknown regime {family!r}; choose from {', '.join(REGIMES)}")
        nets = [n for n in self.nets if n.net.family == family]
        if any(n.ok is None for n in nets):
            return None, "; ".join(f"no finished runs of {n.net.label}" for n in nets if n.ok is None)
        short = [n.shortfall() for n in nets if not n.ok]
        if short and family == VGG:  # "the standard VGG ends at 44% and the BN VGG at 77% train accuracy, ..."
            short = [" and ".join([short[0], *(s.replace(" ends", "") for s in short[1:])])]
            short[0] += f" train accuracy at LR {fmt_lr(VGG_LR)}, the paper's at about 100%"
        return not short, "; ".join(short)

    def comparable(self, regimes) -> tuple[bool | None, str]:
        """A study resting on `regimes`: False when one of them is not comparable (why: theirs, joined), None
        when one has no runs and none fails, else True."""
        answers = [self.of(r) for r in regimes]
        if any(ok is False for ok, _ in answers):
            return False, "; ".join(why for ok, why in answers if ok is False)
        if any(ok is None for ok, _ in answers):
            return None, "; ".join(why for ok, why in answers if ok is None)
        return True, ""


def vgg_numbers(res: Results, rid: str) -> dict:
    """A finished VGG run's final train-subset and test accuracy (Missing while it is still training)."""
    diverged(res, rid)  # raises Missing for an unfinished run: its last evaluations are not final
    return {"train_acc": final_train_acc(res, rid), "test_acc": final_eval(res, rid, "test_acc")}


def dln_numbers(res: Results, rid: str) -> dict:
    """A finished DLN run's final loss, and k and its optimal rank-k loss where the run's target is known."""
    diverged(res, rid)
    out = {"loss": final_train_loss(res, rid)}
    try:
        k, residual = learned_directions(res, rid)
    except Missing:
        return out
    return out | {"k": int(k), "residual": float(residual)}


def net_numbers(res: Results, net: Net, scale: str | None) -> NetNumbers:
    numbers = NetNumbers(net)
    read = vgg_numbers if net.family == VGG else dln_numbers
    for seed in seeds_of(res):
        try:
            numbers.per_seed[seed] = read(res, run_id_of(res, net.model, net.lr, scale, seed))
        except Missing as e:
            numbers.missing = numbers.missing or str(e)
    return numbers


def measure(res: Results | None, scale: str | None = None) -> Regime:
    """Every net's final numbers from the finished runs of `res` (at `scale`'s numbers when given)."""
    if res is None or res.runs is None or not len(res.runs):
        return Regime([NetNumbers(net, missing="no runs") for net in NETS])
    return Regime([net_numbers(res, net, scale) for net in NETS])


def yes_no(ok: bool | None) -> str:
    return {True: "yes", False: "no", None: "-"}[ok]


def section(r: Regime, scale: str | None, by_regime: dict[str, list[str]]) -> list[str]:
    """The report's `## Regime` section: the table, the rule, and which studies rest on which regime."""
    lines = [
        "## Regime: where these runs sit against the paper's",
        "",
        "The paper's numbers are at its scale (VGG16 full width, 15,000 steps, a GPU). A smaller scale keeps the "
        "protocol (plain SGD, batch 128, no augmentation, the paper's LRs, layers and step sizes) but trains a "
        f"narrower VGG, or for fewer steps. Where these runs (scale **{scale or 'all runs found'}**) end against "
        f"the paper's: the final numbers of Fig 1's VGG nets at LR {fmt_lr(VGG_LR)} and Fig 5b's DLNs at LR "
        f"{fmt_lr(DLN_LR)}, mean (min-max) over the finished seeds. A VGG run's final "
        "accuracy is the mean of its last 3 evaluations, a DLN's final loss the mean of its last 50 steps, k the "
        "number of the target's singular directions it has learned (the k whose optimal rank-k loss is nearest "
        "its final loss).",
        "",
        "| net | LR | seeds | ours | paper's | meets the rule |",
        "|---|---|---|---|---|---|",
    ]
    for n in r.nets:
        seeds = ", ".join("?" if s is None else str(s) for s in n.seeds) or "-"
        cells = [n.net.label, fmt_lr(n.net.lr), seeds, n.cell(), n.net.paper_text, yes_no(n.ok)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", RULE.sentence(), ""]
    for family in REGIMES:
        ok, why = r.of(family)
        ids = ", ".join(by_regime.get(family, [])) or "none"
        note = f" ({why})" if why and ok is not True else ""
        name = "Theory" if family == THEORY else family.upper()
        lines.append(f"- {name} ({ids}): comparable: **{yes_no(ok)}**{note}")
    lines += [
        "",
        "A verdict on runs whose magnitude is not comparable says whether the effect shows at this scale, not "
        "that it has the paper's size: its section says so beside the verdict.",
        "",
    ]
    return lines
