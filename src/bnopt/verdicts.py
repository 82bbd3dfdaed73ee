"""Verdicts from per-seed numbers: a statistic over seeds with its 95% interval, and rules declared once.

A rule is data: conditions on named statistics (`below(0)`, `at_least(1.5)`, `within(-0.02, 0.02)`) put
together as `Bands` (a verdict per band of one or more statistics) or `Tests` (sub-tests counted: all pass,
some, none). From that one declaration come the predicate that judges the numbers, the thresholds an
interval is checked against, and the sentence the report prints, so the three cannot disagree.

Judging an interval: the rule is applied to every value the interval allows that can change its outcome
(the ends and both sides of each threshold inside it); one outcome = that verdict, several = inconclusive.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

# Outcomes, one scale for the paper's claims and the studies beyond it; `Vocabulary` names them in a report.
HOLDS, PARTLY, FAILS = "holds", "partly", "fails"
INCONCLUSIVE, NOT_RUN = "inconclusive", "not run"
PASS, FAIL = "pass", "fail"  # a sub-test's outcome
CONFIDENCE = 0.95
ROUNDOFF = 1e-12  # far above float64 round-off in the theorem checks (about 1e-15) and far below a real error


@dataclass(frozen=True)
class Vocabulary:
    """The words a report uses for HOLDS / PARTLY / FAILS."""

    holds: str
    partly: str
    fails: str

    def word(self, outcome: str) -> str:
        return {HOLDS: self.holds, PARTLY: self.partly, FAILS: self.fails}.get(outcome, outcome)


PAPER = Vocabulary("reproduced", "partly", "not reproduced")  # the paper's claims C1-C9
BEYOND = Vocabulary("supported", "partly", "not supported")  # claims the paper did not test, B1-B11


# --------------------------------------------------------------------------------------------- intervals


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, lo, hi): mean +- t(1 - alpha/2, n-1) s / sqrt(n); one value: lo = hi = the value."""
    v = np.asarray(values, dtype=float)
    if not len(v):
        return (float("nan"),) * 3
    m = float(v.mean())
    if len(v) == 1:
        return m, m, m
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1)) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, m - half, m + half


def log_t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(geometric mean, lo, hi) of positive ratios: the t-interval of their log10, taken back to ratios."""
    m, lo, hi = t_interval(np.log10(np.asarray(values, dtype=float)), confidence)
    return float(10**m), float(10**lo), float(10**hi)


def fmt(x: float, pct: bool = False) -> str:
    if x != x:
        return "n/a"
    if abs(x) == float("inf"):
        return "inf" if x > 0 else "-inf"
    return f"{100 * x:.1f}%" if pct else f"{x:.4g}"


def roundoff(error: float) -> str:
    """A relative error of a float64 identity check, as the report prints it: "below 1e-12" while it is
    round-off, whose digits are noise (B2's gap is 1.2e-15 with AVX2's vectorised sums and 1.3e-15 with
    ATEN_CPU_CAPABILITY=default: the CPU picks the summation order), else the number."""
    return f"below {ROUNDOFF:g}" if error < ROUNDOFF else f"{error:.2e}"


def log_ratio(a: float, b: float) -> float:
    """log10(a / b); -inf / inf at 0; NaN when either is NaN or negative."""
    if not (a == a and b == b) or a < 0 or b < 0:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.log10(a) - np.log10(b))


# -------------------------------------------------------------------------------------------- statistics


@dataclass
class Stat:
    """One judged statistic over seeds: per-seed values, their mean and a 95% interval.

    `method`: "t" (Student-t interval of the mean, n-1 degrees of freedom) or "log" (a ratio: the t-interval
    of the per-seed log10, taken back; the mean is the geometric mean). A statistic with a value the
    interval cannot take (infinite; for a ratio also 0) gets no interval: its method becomes "seeds", the
    rule is applied to each seed's value and one verdict for all seeds is that verdict (the report states
    the count, e.g. "3/5 seeds infinite"). "range": a reported (never judged) number whose t-interval would leave
    its domain (a fraction of training, a count): the mean and the seeds' least and greatest value, called a
    range, not an interval. `thresholds`: the rule's cut points on it (set by the rule that
    judges it). `pct`: shown as a percentage. `verdict`: what the rule made of it."""

    name: str
    values: dict
    method: str = "t"
    thresholds: tuple = ()
    pct: bool = False
    verdict: str = ""
    mean: float = field(init=False)
    lo: float = field(init=False)
    hi: float = field(init=False)

    def __post_init__(self):
        if self.method not in ("t", "log", "seeds", "range"):
            raise ValueError(f"unknown interval method {self.method!r} (t, log, seeds or range)")
        vals = self.finite_or_infinite()
        usable = np.isfinite(vals).all() and (self.method != "log" or (vals > 0).all())
        if not usable:
            self.method = "seeds"
        if self.method in ("seeds", "range"):
            with np.errstate(invalid="ignore"):
                self.mean = float(vals.mean()) if len(vals) else float("nan")
            self.lo, self.hi = (float(vals.min()), float(vals.max())) if len(vals) else (float("nan"),) * 2
        else:
            self.mean, self.lo, self.hi = (log_t_interval if self.method == "log" else t_interval)(vals)

    def finite_or_infinite(self) -> np.ndarray:
        """The per-seed values, NaN (not measured) dropped."""
        vals = np.array([float(v) for v in self.values.values()], dtype=float)
        return vals[~np.isnan(vals)]

    @property
    def n(self) -> int:
        return int(sum(1 for v in self.values.values() if float(v) == float(v)))

    @property
    def short(self) -> str:
        """The name before " = " (S1 of "S1 = log10(...)"), as rules and plain statements cite it."""
        return self.name.split(" = ")[0]

    @property
    def label(self) -> str:
        if self.n == 0:
            return "no seed measured it"
        if self.n <= 1:
            return "1 seed, no interval"
        if self.method == "range":
            return f"{self.n} seeds, range (least to greatest; not judged, no interval)"
        if self.method == "seeds":
            vals = self.finite_or_infinite()
            odd = int((~np.isfinite(vals)).sum()) or int((vals <= 0).sum())
            what = "infinite" if (~np.isfinite(vals)).any() else "zero"
            return f"{odd}/{self.n} seeds {what}: no interval, the rule is applied to each seed"
        return f"{self.n} seeds, 95% t-interval" + (" of log10" if self.method == "log" else "")

    @property
    def kind(self) -> str:
        """The interval in a word for a table cell."""
        return {"t": "t", "log": "t on log10", "seeds": "per seed", "range": "range"}[self.method]

    def candidates(self) -> list[float]:
        """Values the statistic can take that meet every verdict it can give. With an interval: its ends
        and both sides of each threshold strictly inside it (the rules are monotone step functions of the
        statistic); without one ("seeds"): every seed's value."""
        if self.method == "seeds":
            return list(self.finite_or_infinite()) or [float("nan")]
        if self.lo != self.lo:
            return [float("nan")]
        out = [self.lo, self.hi]
        for t in self.thresholds:
            if self.lo <= t <= self.hi:
                out += [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)]
        return [v for v in out if self.lo <= v <= self.hi] or [self.lo]

    def fmt(self, x: float) -> str:
        return fmt(x, self.pct)

    def summary(self) -> str:
        per_seed = ", ".join(f"s{s}: {self.fmt(v)}" for s, v in self.values.items())
        mean = "geometric mean" if self.method == "log" else "mean"
        body = f"{self.name}: per seed {per_seed}; {mean} {self.fmt(self.mean)}"
        if self.n > 1 and self.method == "range":
            body += f", range [{self.fmt(self.lo)}, {self.fmt(self.hi)}]"
        elif self.n > 1 and self.method != "seeds":
            body += f", 95% interval [{self.fmt(self.lo)}, {self.fmt(self.hi)}]"
        return body + f" ({self.label})" + (f" -> {self.verdict}" if self.verdict else "")


def outcomes_over(intervals: list[Stat], fn) -> str:
    """fn's outcome when every combination of values inside the statistics' intervals gives the same one;
    INCONCLUSIVE otherwise. `fn` takes the statistics' values in order."""
    if any(s.n == 0 for s in intervals):
        return INCONCLUSIVE  # nothing measured: no evidence either way (e.g. every loss range below resolution)
    outcomes = {fn(*combo) for combo in itertools.product(*(s.candidates() for s in intervals))}
    return outcomes.pop() if len(outcomes) == 1 else INCONCLUSIVE


# -------------------------------------------------------------------------------------------------- rules


def _merged(a: tuple, b: tuple) -> tuple:
    """The thresholds of both, each once: a statistic is judged at every cut point its rule has."""
    return tuple(dict.fromkeys((*a, *b)))


@dataclass(frozen=True)
class Condition:
    """value <op> bound (op: <, <=, >, >=) or lo <= value <= hi (op: within)."""

    op: str
    bound: float
    upper: float = float("nan")

    def __call__(self, x: float) -> bool:
        return {
            "<": x < self.bound,
            "<=": x <= self.bound,
            ">": x > self.bound,
            ">=": x >= self.bound,
            "within": self.bound <= x <= self.upper,
        }[self.op]

    @property
    def thresholds(self) -> tuple[float, ...]:
        return (self.bound, self.upper) if self.op == "within" else (self.bound,)

    def describe(self, pct: bool = False) -> str:
        b = fmt(self.bound, pct)
        if self.op == "within":
            return f"within [{b}, {fmt(self.upper, pct)}]"
        return {"<": f"below {b}", "<=": f"at or below {b}", ">": f"above {b}", ">=": f"at or above {b}"}[self.op]


def below(t: float) -> Condition:
    return Condition("<", t)


def at_most(t: float) -> Condition:
    return Condition("<=", t)


def above(t: float) -> Condition:
    return Condition(">", t)


def at_least(t: float) -> Condition:
    return Condition(">=", t)


def within(lo: float, hi: float) -> Condition:
    return Condition("within", lo, hi)


@dataclass(frozen=True)
class Test:
    """A sub-test: statistic `stat` meets `condition` over its whole interval (pass), fails it over its whole
    interval (fail), or its interval allows both (inconclusive). `against`: for a study, what a failure says
    against the popular claim, stated first in its evidence."""

    __test__ = False  # not a pytest test class
    stat: str
    condition: Condition
    against: str = ""

    def judge(self, s: Stat) -> str:
        s.thresholds = _merged(s.thresholds, self.condition.thresholds)
        return outcomes_over([s], lambda x: PASS if self.condition(x) else FAIL)

    def describe(self, named: dict[str, Stat]) -> str:
        s = named[self.stat]
        return f"{s.short} {self.condition.describe(s.pct)}"


@dataclass(frozen=True)
class AtLeast:
    """A sub-test made of sub-tests: at least `k` of `tests` pass (C8(b): BN smoother on 2 of 3 medians)."""

    k: int
    tests: tuple[Test, ...]
    name: str = ""

    def judge_all(self, named: dict[str, Stat]) -> str:
        for t in self.tests:
            named[t.stat].thresholds = _merged(named[t.stat].thresholds, t.condition.thresholds)

        def passes(*xs) -> str:
            return PASS if sum(t.condition(x) for t, x in zip(self.tests, xs, strict=True)) >= self.k else FAIL

        return outcomes_over([named[t.stat] for t in self.tests], passes)

    def describe(self, named: dict[str, Stat]) -> str:
        parts = ", ".join(t.describe(named) for t in self.tests)
        return f"{self.name or 'at least'} {self.k} of {len(self.tests)} of: {parts}"


def _count(outcomes: list[str], holds_at: float = 1.0, partly_at: float = 0.0) -> str:
    """HOLDS when the fraction of sub-tests that pass is at least `holds_at` (default: all), PARTLY when above
    0 (default: some) or at least `partly_at`, else FAILS; INCONCLUSIVE when an inconclusive sub-test could
    change that."""
    options = [[PASS, FAIL] if o == INCONCLUSIVE else [o] for o in outcomes]
    verdicts = set()
    for combo in itertools.product(*options):
        f = sum(o == PASS for o in combo) / max(len(combo), 1)
        verdicts.add(HOLDS if f >= holds_at else (PARTLY if (f >= partly_at if partly_at else f > 0) else FAILS))
    return verdicts.pop() if len(verdicts) == 1 else INCONCLUSIVE


@dataclass(frozen=True)
class Tests:
    """Sub-tests counted: all pass = HOLDS, some = PARTLY, none = FAILS (inconclusive when an inconclusive
    sub-test could change that). Each sub-test's outcome is set on its statistic's `verdict`."""

    __test__ = False  # not a pytest test class
    tests: tuple
    holds_at: float = 1.0  # the fraction of sub-tests that must pass for HOLDS (1: all)
    partly_at: float = 0.0  # ... for PARTLY (0: at least one)

    def stat_names(self) -> list[str]:
        return [t.stat for t in self._leaves()]

    def _leaves(self) -> list[Test]:
        return [leaf for t in self.tests for leaf in (t.tests if isinstance(t, AtLeast) else (t,))]

    def thresholds(self, stat: str) -> tuple:
        return tuple(x for t in self._leaves() if t.stat == stat for x in t.condition.thresholds)

    def judge(self, named: dict[str, Stat]) -> tuple[str, list[str]]:
        """(the verdict, one line per composite sub-test saying its outcome)."""
        outcomes, lines = [], []
        for t in self.tests:
            if isinstance(t, AtLeast):
                for leaf in t.tests:
                    named[leaf.stat].verdict = leaf.judge(named[leaf.stat])
                outcomes.append(t.judge_all(named))
                lines.append(f"sub-test {t.describe(named)}: {outcomes[-1]}")
            else:
                named[t.stat].verdict = t.judge(named[t.stat])
                outcomes.append(named[t.stat].verdict)
        return _count(outcomes, self.holds_at, self.partly_at), lines

    def against(self, named: dict[str, Stat]) -> list[str]:
        """The plain statement of each sub-test that failed: what the numbers say against the claim."""
        out = []
        for t in self.tests:
            if isinstance(t, Test) and t.against and named[t.stat].verdict == FAIL:
                s = named[t.stat]
                out.append(f"against the claim: {t.against} ({s.short} = {s.fmt(s.mean)}, {s.label})")
        return out

    def sentence(self, named: dict[str, Stat], words: Vocabulary) -> str:
        if len(self.tests) == 1 and isinstance(self.tests[0], Test):  # (one AtLeast reads as the general case)
            t = self.tests[0]
            s = named[t.stat]
            return (
                f"rule: {words.holds} when the whole interval of {s.short} is {t.condition.describe(s.pct)}, "
                f"{words.fails} when none of it is; otherwise inconclusive"
            )
        parts = "; ".join(f"({i + 1}) {t.describe(named)}" for i, t in enumerate(self.tests))
        if self.holds_at == 1.0 and not self.partly_at:
            count = f"all pass = {words.holds}, some = {words.partly}, none = {words.fails}"
        else:
            count = (
                f"at least {self.holds_at:.0%} pass = {words.holds}, at least {self.partly_at:.0%} = {words.partly}, "
                f"fewer = {words.fails}"
            )
        return (
            f"rule: sub-tests, each over its whole interval: {parts}; {count}; inconclusive when an inconclusive "
            "sub-test could change that"
        )


@dataclass(frozen=True)
class Bands:
    """A verdict per band: the first band whose conditions all hold gives its outcome, else `otherwise`.
    Each band is ((stat, Condition), ...) -> outcome; judged over the statistics' whole intervals
    (inconclusive when they allow more than one verdict)."""

    bands: tuple  # ((((stat, Condition), ...), outcome), ...)
    otherwise: str = FAILS

    def stat_names(self) -> list[str]:
        return list(dict.fromkeys(s for conds, _ in self.bands for s, _ in conds))

    def thresholds(self, stat: str) -> tuple:
        return tuple(x for conds, _ in self.bands for s, c in conds if s == stat for x in c.thresholds)

    def outcome(self, values: dict[str, float]) -> str:
        for conds, outcome in self.bands:
            if all(c(values[s]) for s, c in conds):
                return outcome
        return self.otherwise

    def judge(self, named: dict[str, Stat]) -> tuple[str, list[str]]:
        names = self.stat_names()
        for n in names:
            named[n].thresholds = _merged(named[n].thresholds, self.thresholds(n))
        verdict = outcomes_over([named[n] for n in names], lambda *xs: self.outcome(dict(zip(names, xs, strict=False))))
        if len(names) == 1:
            named[names[0]].verdict = verdict
        return verdict, []

    def against(self, named: dict[str, Stat]) -> list[str]:
        return []

    def sentence(self, named: dict[str, Stat], words: Vocabulary) -> str:
        names = self.stat_names()
        if len(names) == 1:
            s = named[names[0]]
            parts = "; ".join(f"{c.describe(s.pct)} = {words.word(o)}" for ((_, c),), o in self.bands)
            return (
                f"rule: {s.short} over its whole interval: {parts}; otherwise {words.word(self.otherwise)}; "
                "inconclusive when the interval allows more than one verdict"
            )

        def band(conds):
            return " and ".join(f"{named[s].short} {c.describe(named[s].pct)}" for s, c in conds)

        parts = "; ".join(f"{words.word(o)} if {band(conds)}" for conds, o in self.bands)
        return (
            f"rule: {parts} (each over its whole interval); otherwise {words.word(self.otherwise)}; inconclusive "
            "when the intervals allow more than one verdict"
        )


def one(stat: str, *bands: tuple[Condition, str], otherwise: str = FAILS) -> Bands:
    """Bands on one statistic: one("ratio", (at_least(1.5), HOLDS), (above(1), PARTLY))."""
    return Bands(tuple((((stat, c),), o) for c, o in bands), otherwise)
