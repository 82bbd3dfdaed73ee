"""The studies: the paper's claims C1-C9 and the studies beyond it B1-B11, one file each in experiments/.

A study file holds everything that defines its study: the sweeps it reads (configs/experiment/<name>.yaml),
its per-seed statistic (`measure`), its judged statistics and their rule (declared once, bnopt.verdicts),
its evidence lines and the figures it draws. This module finds the files (every `experiments/*.py`; the
package imports none of them by name, so there is no import cycle), runs them and keeps what they return:

    from bnopt import studies
    studies.registry()["C6"].judge(res, "small")   # a Judgement: verdict, statistics, evidence
    studies.judge_all(res, "small")                # every study, in order

Nothing here trains anything; a study whose runs are missing is "not run", with the command that trains them.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from . import experiments
from .readers import Missing
from .results import Results
from .run_selection import MissingRuns, Requires, select_runs
from .verdicts import BEYOND, FAILS, HOLDS, NOT_RUN, PAPER, PARTLY, Bands, Stat, Tests, Vocabulary

STUDY_DIR = Path(__file__).resolve().parents[2] / "experiments"


@dataclass(frozen=True)
class Statistic:
    """A judged statistic's declaration: its key (the rule names it), the per-seed column it summarises (the
    key by default), the name the report prints, and how its interval is computed."""

    key: str
    name: str
    column: str = ""
    method: str = "t"
    pct: bool = False

    def over(self, table: dict, thresholds: tuple) -> Stat:
        col = self.column or self.key
        return Stat(self.name, {s: r[col] for s, r in table.items() if col in r}, self.method, thresholds, self.pct)


@dataclass
class Judgement:
    """What a study concluded: its verdict (in the study's words), the judged statistics, the evidence."""

    id: str
    text: str
    verdict: str
    evidence: list[str] = field(default_factory=list)
    reference: str = ""
    figure: str = ""
    numbers: dict = field(default_factory=dict)
    seeds: list = field(default_factory=list)  # seeds behind the verdict (empty: no runs, e.g. C9)
    stats: list = field(default_factory=list)  # the judged statistics (Stat)
    per_seed: dict = field(default_factory=dict)  # seed -> {number: value}
    cell: str = ""  # the numbers in one line where there are no per-seed statistics (a theorem's check)
    regime: tuple = ("vgg",)  # Study.regime
    post_hoc: str = ""  # Study.post_hoc

    @property
    def n_seeds(self) -> str:
        """ "N" or "min-max" over the judged statistics (sub-tests can rest on different seeds); "-" if none."""
        ns = sorted({s.n for s in self.stats}) or ([len(self.seeds)] if self.seeds else [])
        if not ns:
            return "-"
        return str(ns[0]) if ns[0] == ns[-1] else f"{ns[0]}-{ns[-1]}"


class Study:
    """One claim or study. A file in experiments/ subclasses it and sets the class attributes; most studies
    write only `measure` and `lines`, and the judging, the evidence and the report come from here."""

    id: str = ""  # C1..C9 (the paper's claims) or B1.. (beyond the paper)
    claim: str = ""  # the claim in one line
    paper: str = ""  # the paper's numbers (claims only)
    sweeps: tuple[str, ...] = ()  # the experiment configs whose runs it reads (configs/experiment/<name>.yaml)
    figures: tuple[str, ...] = ()  # the figures it draws or rests on
    statistics: tuple[Statistic, ...] = ()
    rule: Bands | Tests | None = None
    notes: tuple[str, ...] = ()  # what is measured, in words, after the statistics
    # the runs its magnitude rests on (bnopt.regime: "vgg" = Fig 1's VGG nets, "dln" = the DLNs, "theory" =
    # none): the report says beside its verdict when their magnitude is not comparable to the paper's
    regime: tuple[str, ...] = ("vgg",)
    # a rule changed after seeing results: when and what (docs/PROTOCOL.md section 2, "Rule changes", post hoc);
    # the report says so in the study's section
    post_hoc: str = ""

    @property
    def words(self) -> Vocabulary:
        return PAPER if self.id.startswith("C") else BEYOND

    @property
    def order(self) -> tuple[int, int]:
        return (0 if self.id.startswith("C") else 1, int(self.id[1:]))

    # -- what a study file writes
    def measure(self, res: Results, scale: str | None, seed: int | None) -> dict:
        """The per-seed numbers: {name: value}; raise readers.Missing when a run or record is absent."""
        raise NotImplementedError

    def lines(self, table: dict) -> list[str]:
        """The per-seed evidence lines."""
        return []

    def draw(self, res: Results, scale: str | None):
        """The study's own figure, `figures[0]` (a matplotlib Figure; MissingRuns when its runs are missing).
        A study that only rests on the paper's figures does not write it."""
        raise NotImplementedError

    @property
    def draws(self) -> bool:
        return type(self).draw is not Study.draw

    # -- the shared path
    def table(self, res: Results, scale: str | None) -> dict:
        return per_seed(res, lambda seed: self.measure(res, scale, seed))

    def judge(self, res: Results | None, scale: str | None = None) -> Judgement:
        """The verdict from the records; "not run" (with the command that trains the runs) when missing."""
        try:
            return self.conclude(self.table(res, scale))
        except Missing as e:
            return self.not_run(str(e), scale)

    def conclude(self, table: dict, extra_stats: tuple[Stat, ...] = ()) -> Judgement:
        """Judge the per-seed table by the rule: statistics, verdict, evidence (per-seed lines, statistics,
        notes, the rule's sentence; for a study, first what a failed sub-test says against its claim)."""
        statistics, rule = self.judged_by(table)
        named = {s.key: s.over(table, rule.thresholds(s.key)) for s in statistics}
        outcome, rule_lines = rule.judge(named)
        for s in named.values():
            s.verdict = self.words.word(s.verdict) if s.verdict in (HOLDS, PARTLY, FAILS) else s.verdict
        stats = [*named.values(), *extra_stats]
        against = rule.against(named) if self.words is BEYOND else []
        j = self.judgement(self.words.word(outcome))
        j.per_seed, j.seeds, j.stats = table, list(table), stats
        j.numbers = seed_means(table) | {"n_seeds": len(table)}
        j.evidence = [
            *against,
            *self.lines(table),
            *(s.summary() for s in stats),
            *self.notes,
            *rule_lines,
            rule.sentence(named, self.words),
        ]
        return j

    def judged_by(self, table: dict) -> tuple[tuple[Statistic, ...], Bands | Tests]:
        """The statistics and the rule a table is judged by: the class's, or, for a study whose sub-tests are
        the pairs of runs that exist (C5, C7), built from the table by the study's one declaration."""
        return self.statistics, self.rule

    def judgement(self, verdict: str, evidence: list[str] | None = None) -> Judgement:
        j = Judgement(self.id, self.claim, verdict, evidence or [], self.paper, ", ".join(self.figures))
        j.regime, j.post_hoc = tuple(self.regime), self.post_hoc
        return j

    def not_run(self, why: str, scale: str | None) -> Judgement:
        return self.judgement(NOT_RUN, [f"not run: {why}", train_hint(self.sweeps, scale)])


# --------------------------------------------------------------------------------------------- registry


def _load(path: Path):
    name = f"bnopt_experiments.{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@cache
def _registry(folder: Path) -> dict[str, Study]:
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _load(path)
        found += [
            obj()
            for obj in vars(module).values()
            if isinstance(obj, type)
            and issubclass(obj, Study)
            and obj is not Study
            and obj.__module__ == module.__name__
        ]
    return {s.id: s for s in sorted(found, key=lambda s: s.order)}


def registry(folder: Path | None = None) -> dict[str, Study]:
    """Every study in experiments/ (or `folder`), by id, the paper's claims first, each in number order."""
    return _registry(Path(folder or STUDY_DIR).resolve())


def claims() -> list[Study]:
    return [s for s in registry().values() if s.words is PAPER]


def beyond() -> list[Study]:
    return [s for s in registry().values() if s.words is BEYOND]


def judge_all(res: Results, scale: str | None = None, progress: Callable[[str], None] | None = None) -> list[Judgement]:
    """Every study's judgement, in order; `progress(id)` is called after each."""
    out = []
    for study in registry().values():
        out.append(study.judge(res, scale))
        if progress:
            progress(study.id)
    return out


def train_hint(sweeps, scale: str | None) -> str:
    """The commands that train a study's runs, from the sweeps it reads."""
    extra = f" scale={scale}" if scale else ""
    commands = [f"`{experiments.get(name).command}{extra}`" for name in sweeps]
    return "train its runs with " + " and ".join(commands) if commands else "needs no runs"


# ------------------------------------------------------------------------------------- per-seed helpers


def seeds_of(res: Results) -> list:
    """The seeds in the runs table, sorted ([None] when the table has no seed column)."""
    runs = res.runs
    if runs is None or "seed" not in runs or not len(runs):
        return [None]
    return sorted(int(s) for s in runs["seed"].dropna().unique())


def seed_key(seed) -> tuple:
    return (seed is None, -1 if seed is None else seed)


def per_seed(res: Results, measure: Callable[[int | None], dict]) -> dict:
    """{seed: measure(seed)} over the seeds whose runs all exist; raises the first Missing if none."""
    out, first = {}, None
    for s in seeds_of(res):
        try:
            out[s] = measure(s)
        except Missing as e:
            first = first or e
    if not out:
        raise first or Missing("no runs")
    return out


def run_id_of(res: Results, model: str, lr: float, scale: str | None, seed: int | None = None, **requires) -> str:
    """The run of (model, lr, seed) a study reads; `requires`: the other `run_selection.Requires` it must meet, e.g.
    probes=(...), the probe records it must hold (a run trained with other probes, e.g. a beyond study's, has
    the same training but not those records), init_scale (B3) or batch_size (B5)."""
    wanted = Requires(seed=seed, **requires)
    try:
        return str(select_runs(res, [(model, lr)], scale, wanted)[(model, float(lr))]["run_id"])
    except MissingRuns:
        raise Missing(f"no run of {model} at LR {lr:g}{wanted.describe()}") from None


def _is_num(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def seed_means(table: dict) -> dict:
    """Mean over seeds of each number measured per seed (non-finite kept, NaN dropped)."""
    keys = dict.fromkeys(k for row in table.values() for k in row)
    out = {}
    for k in keys:
        vals = [float(row[k]) for row in table.values() if k in row and _is_num(row[k])]
        vals = [v for v in vals if v == v]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def column(table: dict, key: str) -> dict:
    return {s: row[key] for s, row in table.items() if key in row}


def seed_median(table: dict, key: str) -> tuple[float, int]:
    """The median over the seeds that measured `key`, and how many did (NaN, 0 when none): a reported
    number that is not judged (C5's and B11's how far each net trained)."""
    vals = list(column(table, key).values())
    return (float(np.median(vals)), len(vals)) if vals else (float("nan"), 0)
