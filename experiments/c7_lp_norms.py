"""C7: l1, l2, l-infinity normalisations give the same or better optimisation benefit (Fig 5, 12, 13;
docs/PROTOCOL.md section 2).

Each l_p net against a reference net of its family, per seed (the seeds where both runs exist): VGG16_lp
against VGG16 with BN at LR 0.1 on the final train-subset accuracy (statistic: acc l_p - BN), the DLN_lp
against the standard DLN at LR 1e-6 on the final loss (statistic: log10(loss l_p / standard)). A statistic
and its sub-test exist for each family and norm that has runs; the family's condition is declared once.

Every DLN run of a seed (standard, BN, l1, l2, linf) is reported with its final loss and k, the singular
directions of the target it has learned (`bnopt.dln_rank`; PROTOCOL section 2, rules of 2026-12-07, "DLN (C7,
C8)"), and a sentence says whether the paper's ordering l1 << BN << standard holds, judged on k (`ordering`).
"""

from collections.abc import Callable
from dataclasses import dataclass

from bnopt.measures import SAME_LOSS, dln_fits, dln_fits_line, same_loss
from bnopt.readers import DLN_LR, VGG_LR, Missing, final_train_acc, final_train_loss
from bnopt.studies import Statistic, Study, per_seed, run_id_of, seed_key
from bnopt.verdicts import PASS, Condition, Test, Tests, at_least, below, fmt, log_ratio

NORMS = ("l1", "l2", "linf")


@dataclass(frozen=True)
class Family:
    """One family's half of C7: each l_p net against a reference net of the same family, per seed."""

    name: str  # VGG | DLN
    ref: str  # the reference model
    ref_name: str
    prefix: str  # the l_p models are prefix + l1 | l2 | linf
    lr: float
    measure: Callable  # (results, run id) -> the run's number
    quantity: str
    keys: tuple[str, str]  # per-seed keys of the l_p net's and the reference's number
    column: str  # per-seed key of the statistic
    statistic: str  # the statistic's name; {p} is the norm
    compare: Callable[[float, float], float]  # (l_p number, reference number) -> statistic
    condition: Condition  # the sub-test: the statistic meets it over its whole interval
    pct: bool

    def key(self, p: str) -> str:
        return f"{self.name.lower()}_{p}"


FAMILIES = (
    Family(
        name="VGG",
        ref="vgg16_bn",
        ref_name="BN",
        prefix="vgg16_",
        lr=VGG_LR,
        measure=final_train_acc,
        quantity="final train-subset acc",
        keys=("acc", "acc_bn"),
        column="acc_diff",
        statistic="acc {p} - BN",
        compare=lambda x, ref: x - ref,
        condition=at_least(-0.05),  # within 5 points of BN's accuracy, or above it
        pct=True,
    ),
    Family(
        name="DLN",
        ref="dln",
        ref_name="standard",
        prefix="dln_",
        lr=DLN_LR,
        measure=final_train_loss,
        quantity="final loss",
        keys=("loss", "loss_std"),
        column="log10_ratio_loss",
        statistic="log10(loss {p} / standard)",
        compare=log_ratio,
        condition=below(0.0),  # a lower final loss than the standard DLN's
        pct=False,
    ),
)


def family_table(res, scale, fam: Family) -> dict:
    """{seed: {<family>_<p>_<key>: value}}: for each norm p whose l_p net has a run at that seed besides the
    reference net's, the two numbers and the statistic; over the seeds that have a pair (empty if none)."""

    def measure(seed):
        ref = fam.measure(res, run_id_of(res, fam.ref, fam.lr, scale, seed))
        row = {}
        for p in NORMS:
            try:
                x = fam.measure(res, run_id_of(res, f"{fam.prefix}{p}", fam.lr, scale, seed))
            except Missing:
                continue
            pair = {fam.keys[0]: x, fam.keys[1]: ref, fam.column: fam.compare(x, ref)}
            row |= {f"{fam.key(p)}_{k}": v for k, v in pair.items()}
        if not row:
            raise Missing(f"no {fam.name} l_p run at seed {seed}")
        return row

    try:
        return per_seed(res, measure)
    except Missing:
        return {}


PAPER_ORDER = "l1 << BN << standard (Fig 5b: l1 ~1e2, BN 5e2, standard 1.6e3)"
ORDERED = {"dln_l1": "l1", "dln_l2": "l2", "dln_bn": "BN", "dln": "standard"}  # as the ordering names them


def ordering(table: dict) -> str | None:
    """Whether the paper's DLN ordering holds, from each seed's k (`dln_fits`): l1 << BN where the l1 net
    learns more singular directions of the target than BN, BN << standard where BN learns more than the
    standard net (equal k: the same optimal residual, whatever small gap is left). None without the k of
    l1, BN and the standard net on some seed."""
    ks = {s: {m: r.get(f"fit_{m}_k", float("nan")) for m in ORDERED} for s, r in table.items()}
    ks = {s: k for s, k in ks.items() if all(k[m] == k[m] for m in ("dln_l1", "dln_bn", "dln"))}
    if not ks:
        return None
    nets = [m for m in ORDERED if all(k[m] == k[m] for k in ks.values())]
    per_seed = "; ".join(f"seed {s}: " + " / ".join(f"{int(k[m])}" for m in nets) for s, k in ks.items())
    detail = f"k of {' / '.join(ORDERED[m] for m in nets)}: {per_seed}"
    holds = [s for s, k in ks.items() if k["dln_l1"] > k["dln_bn"] > k["dln"]]
    if len(holds) == len(ks):
        return f"DLN: the paper's ordering {PAPER_ORDER} holds on every seed, in learned directions ({detail})"
    if holds:
        return (
            f"DLN: the paper's ordering {PAPER_ORDER} holds on seeds {', '.join(map(str, holds))} only, in "
            f"learned directions ({detail})"
        )
    normed = [m for m in nets if m != "dln"]
    names = ", ".join(ORDERED[m] for m in normed[:-1]) + f" and {ORDERED[normed[-1]]}"
    out = f"DLN: the paper's ordering {PAPER_ORDER} is not reproduced ({detail})"
    if all(len({k[m] for m in normed}) == 1 for k in ks.values()):
        out += f": {names} learn the same number of singular directions of the target on every seed"
        losses = {s: [table[s][f"fit_{m}_loss"] for m in normed] for s in ks}
        same = [s for s, v in losses.items() if same_loss(*v)]
        if same:
            where = "every seed" if len(same) == len(ks) else f"seeds {', '.join(map(str, same))}"
            out += f" and end within {fmt(SAME_LOSS, True)} of each other on {where}"
        out += "".join(
            f" (seed {s}: " + ", ".join(f"{ORDERED[m]} {fmt(x)}" for m, x in zip(normed, v, strict=True)) + ")"
            for s, v in losses.items()
            if s not in same
        )
    return out


def present(table: dict) -> list[tuple[Family, str]]:
    """The (family, norm) pairs the per-seed table has numbers of."""
    return [
        (fam, p) for fam in FAMILIES for p in NORMS if any(f"{fam.key(p)}_{fam.column}" in r for r in table.values())
    ]


class C7(Study):
    id = "C7"
    claim = "l1, l2, l-infinity normalisations give the same or better optimisation benefit"
    paper = (
        "l_p nets train as well as or better than BN (Fig 5a); DLN at 10k steps: l1 ~1e2 vs BN 5e2 vs standard "
        "1.6e3 (Fig 5b)"
    )
    sweeps = ("fig5_lp_vgg", "fig12", "fig5_lp_dln")
    figures = ("fig5", "fig6", "fig12", "fig13")
    regime = ("vgg", "dln")
    statistics = ()  # declared when judging: one per family and norm that has runs (`judged`)
    rule = None

    def table(self, res, scale):
        """Every family's and norm's numbers, merged by seed; Missing when no l_p net has its pair."""
        merged = {}
        for fam in FAMILIES:
            for seed, row in family_table(res, scale, fam).items():
                merged.setdefault(seed, {}).update(row)
        if not merged:
            raise Missing("no l_p runs")
        for seed, row in merged.items():
            row |= dln_fits(res, scale, seed)
        return {s: merged[s] for s in sorted(merged, key=seed_key)}

    def judged_by(self, table):
        """The statistics and sub-tests of the pairs the table has (each family's condition, declared once)."""
        pairs = present(table)
        statistics = tuple(
            Statistic(
                fam.key(p), f"{fam.name} {p}: {fam.statistic.format(p=p)}", f"{fam.key(p)}_{fam.column}", pct=fam.pct
            )
            for fam, p in pairs
        )
        return statistics, Tests(tuple(Test(fam.key(p), fam.condition) for fam, p in pairs))

    def conclude(self, table, extra_stats=()):
        j = super().conclude(table, extra_stats)
        j.numbers |= {"passed": sum(s.verdict == PASS for s in j.stats), "total": len(j.stats)}
        return j

    def lines(self, table):
        out = []
        for fam in FAMILIES:
            for p in NORMS:
                value, ref = (f"{fam.key(p)}_{k}" for k in fam.keys)
                rows = {s: r for s, r in table.items() if value in r}
                if not rows:
                    out.append(
                        f"{fam.name} {p}: not run (no {fam.ref} and {fam.prefix}{p} at LR {fam.lr:g} of one seed)"
                    )
                out += [
                    f"seed {s}: {fam.name} {p}: {fam.quantity} {fmt(r[value], fam.pct)} "
                    f"vs {fam.ref_name} {fmt(r[ref], fam.pct)}"
                    for s, r in rows.items()
                ]
        out += [dln_fits_line(s, r) for s, r in table.items() if any(k.startswith("fit_") for k in r)]
        order = ordering(table)
        return out + ([order] if order else [])
