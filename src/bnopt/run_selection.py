"""Which runs serve a figure or a claim: the one way figures, claims, the report and notebooks choose runs from
`results.Results`. A run is matched by its resolved numbers (model, learning rate and, for a scale, the preset's
steps, batch size and VGG width), never by the preset's name: runs with equal numbers are the same run
whichever preset asked for them.

    from bnopt.run_selection import Requires, select_runs
    chosen = select_runs(res, [("vgg16_bn", 0.1)], "small", figure="fig1")

Also here: what a missing run or record raises (`MissingRuns`, `MissingRecords`, with the command that trains
it), and what each published figure was drawn from (`figure_manifest`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from omegaconf import OmegaConf

from .config import CONFIG_DIR, SCALES
from .records import FINAL_STATUSES
from .resolvers import preset, preset_name

if TYPE_CHECKING:  # results imports this module: the type only
    from .results import Results

SCALE_ORDER = SCALES  # preference when no scale is asked for: the larger first


class MissingRuns(LookupError):
    """Runs a figure or claim needs are not in the results; `command` says how to train them."""

    def __init__(
        self,
        figure: str,
        message: str,
        experiment: str | None = None,
        scale: str | None = None,
        command: str | None = None,
    ):
        self.figure, self.experiment, self.scale, self.detail = figure, experiment, scale, message
        if command is None and experiment:
            command = train_command(experiment, scale)
        self.command = command
        super().__init__(f"{figure}: {message}" + (f"; produce them with: {command}" if command else ""))


class MissingRecords(MissingRuns):
    """The runs exist but lack records the figure needs (probes off, histograms not in W&B, ...)."""


FIGURE_MANIFEST = "manifest.json"  # in a published figure folder, results/<scale>/figures/ (bnopt.report)


def figure_manifest_path(scale: str | None = None, results: str | Path = "results") -> Path:
    """<results>/<scale>/figures/manifest.json (<results>/figures/manifest.json without a scale)."""
    root = Path(results)
    return (root / scale if scale else root) / "figures" / FIGURE_MANIFEST


def figure_manifest(scale: str | None = None, results: str | Path = "results") -> dict:
    """What each published figure of a scale was drawn from, {figure: entry} ({} when none was published):
    run_ids, seeds, scale, steps ({run_id: [first, last] step of its records}) and histograms (one per
    histogram panel: run_id, layer, steps drawn, fraction of values `outside` the drawn range); a figure
    that could not be drawn has {"missing": why} instead. Written by `bnopt.publish.publish`."""
    try:
        data = json.loads(figure_manifest_path(scale, results).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def train_command(experiment: str, scale: str | None = None) -> str:
    """The command that trains an experiment's runs at a scale, always naming the preset: without one (no
    preset's numbers among the runs found) the one `scale=auto` picks here (small on a CPU, paper on a GPU),
    so that a copied command trains what the next selection takes (a command without `scale=` would
    silently train at auto's preset whatever scale the runs found were)."""
    scale = preset_name(scale or "auto")
    return f"bnopt-train experiment={experiment} scale={scale}"


def scale_of(row) -> str | None:
    """The preset whose numbers a runs row has (its own preset's name first: the DLN's numbers are paper's
    and small's), or None for numbers of no preset (an ad-hoc `scale.steps=...`)."""
    own = row.get("scale")
    for scale in ([own] if own in SCALE_ORDER else []) + list(SCALE_ORDER):
        if _at_scale(row, scale):
            return scale
    return None


def same_lr(a, b) -> bool:
    """Learning rates are equal (relative tolerance 1e-9: 1e-8 and 1e-9 differ)."""
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)


def scale_numbers(scale: str, family: str) -> dict:
    """The resolved numbers a preset gives a model family's runs: steps, batch_size (and width for VGG)."""
    return dict(_scale_numbers(preset_name(scale), family))


@cache
def _scale_numbers(name: str, family: str) -> tuple[tuple[str, float], ...]:
    # cached by the preset's name: run selection asks once per row, and reading a preset builds an OmegaConf
    # object each time (most of a study's judging time before)
    block = preset(name, family)
    numbers = {"steps": int(block["steps"]), "batch_size": int(block["batch_size"])}
    if family == "vgg":
        numbers["width"] = float(block["width"])
    return tuple(numbers.items())


@cache
def batch_study_images(scale: str) -> int:
    """B5: the training images every batch size of the batch study sees at a scale (scale.batch_study)."""

    name = preset_name(scale)
    return int(OmegaConf.load(CONFIG_DIR / "scale" / f"{name}.yaml").batch_study.images)


def rows_at_scale(runs: pd.DataFrame, scale: str, batch_study: bool = False) -> pd.DataFrame:
    """The rows of a runs table with a scale preset's numbers; batch_study=True: B5's runs at that scale
    instead (the preset's width, any batch, steps x batch = the scale's batch_study images)."""
    test = _in_batch_study if batch_study else _at_scale
    return runs[[test(row, scale) for _, row in runs.iterrows()]] if len(runs) else runs


def _close(value, want) -> bool:
    return value is not None and value == value and math.isclose(float(value), float(want), rel_tol=1e-9)


def _at_scale(row, scale: str) -> bool:
    family = row.get("family")
    if family not in ("vgg", "dln"):
        return False
    return all(_close(row.get(key), want) for key, want in scale_numbers(scale, family).items())


def _in_batch_study(row, scale: str) -> bool:
    if row.get("family") != "vgg" or not _close(row.get("width"), scale_numbers(scale, "vgg")["width"]):
        return False
    steps, batch = row.get("steps"), row.get("batch_size")
    if steps is None or batch is None or steps != steps or batch != batch:
        return False
    return _close(float(steps) * float(batch), batch_study_images(scale))


def runs_with_probe(res: Results, probe: str) -> set[str]:
    """The runs holding records of `probe` (remembered per Results: a scan of the whole probes table, asked
    for by every selection; a report makes hundreds)."""
    memo = res.memo("with_probe")
    if probe not in memo:
        p = res.probes
        found = p is not None and len(p) and "probe" in p
        memo[probe] = frozenset(p.loc[p["probe"] == probe, "run_id"].unique()) if found else frozenset()
    return set(memo[probe])


def _best_run(frame: pd.DataFrame) -> pd.Series:
    """Finished runs first, then done over diverged, the longest, the furthest trained, the lowest seed (the
    run a one-seed reproduction has: figures that show one run show the same one at any seed count), the
    paper's probes over a beyond study's (the same training: B1's `probes=hessian` or B10's `probes=rank`
    run of a seed stands in only where its records are asked for); ties by run id."""
    status = frame["status"] if "status" in frame else pd.Series("unknown", index=frame.index)
    key = pd.DataFrame(
        {
            "final": status.isin(FINAL_STATUSES).astype(int),
            "done": (status == "done").astype(int),
            "steps": pd.to_numeric(frame.get("steps", 0), errors="coerce").fillna(0),
            "steps_done": pd.to_numeric(frame.get("steps_done", 0), errors="coerce").fillna(0),
            "seed": -pd.to_numeric(frame.get("seed", 0), errors="coerce").fillna(0),
            "paper": (frame["probes"] == "paper").astype(int) if "probes" in frame else 0,
            "run_id": frame["run_id"],
        },
        index=frame.index,
    )
    order = key.sort_values(["final", "done", "steps", "steps_done", "seed", "paper", "run_id"], ascending=False).index
    return frame.loc[order[0]]


def _coverage(chosen: dict, lacking: dict) -> tuple[int, int]:
    """How well a preset's runs cover a figure's pairs: the pairs whose runs hold the records asked for,
    then the pairs with runs at all (runs lacking the records still say at which scale to train them)."""
    usable = sum(1 for c in chosen.values() if len(c))
    return usable, usable + len(lacking)


@cache
def dln_loss_norm() -> str:
    """The DLN loss normalisation the protocol uses now (configs/_model_dln.yaml, the DLNs' private base)."""
    return str(OmegaConf.load(CONFIG_DIR / "_model_dln.yaml").loss_norm)


@dataclass(frozen=True)
class Requires:
    """What a chosen run must be besides its (model, lr) pair and its scale's numbers: a study that needs
    another kind of run adds a field here (and its test in `rows`), not a parameter to `select_runs`.

    `probes`: records the run must hold. `seed`: only that seed. `precision`: only runs trained at that
    `train.precision` (the protocol's fp32: a bf16 run never stands in for it). `loss_norm`: only DLN runs
    with that `model.loss_norm` (None: the one configs/_model_dln.yaml sets). `init_scale`: only runs with
    that `model.init_scale` (the paper's plain Glorot; B3 asks for others). `batch_size`: B5's batch-study
    run at that batch (`rows_at_scale(..., batch_study=True)`) instead of the preset's numbers. The set-up of
    issue 25's DLN ablation: `init` (model.init), `data_seed` (None: the run's own seed's problem, the protocol;
    a number: the problem fixed at it), and, of a run with the landscape probe, `landscape_dtype` and
    `landscape_norm_params` (a run without the probe meets any)."""

    probes: tuple = ()
    seed: int | None = None
    precision: str = "fp32"
    loss_norm: str | None = None
    init_scale: float = 1.0
    batch_size: int | None = None
    init: str = "glorot"
    data_seed: int | None = None
    landscape_dtype: str = "float32"
    landscape_norm_params: bool = True

    def rows(self, runs: pd.DataFrame) -> pd.DataFrame:
        """The rows of a runs table that meet every requirement but the probes (`select_runs` tells runs
        lacking records from absent runs)."""
        if self.seed is not None and "seed" in runs:
            runs = runs[runs["seed"] == self.seed]
        if "precision" in runs:
            runs = runs[runs["precision"] == self.precision]
        if "loss_norm" in runs and "family" in runs:
            runs = runs[(runs["family"] != "dln") | (runs["loss_norm"] == (self.loss_norm or dln_loss_norm()))]
        if "init_scale" in runs:
            runs = runs[runs["init_scale"].fillna(1.0).map(lambda v: math.isclose(float(v), float(self.init_scale)))]
        runs = self._setup_rows(runs)
        if self.batch_size is not None and "batch_size" in runs:
            return runs[runs["batch_size"] == int(self.batch_size)]
        if len(runs) and {"steps", "batch_size"} <= set(runs):  # B5's runs stand in for no other figure's
            runs = runs[[not any(_in_batch_study(row, s) for s in SCALE_ORDER) for _, row in runs.iterrows()]]
        return runs

    def _setup_rows(self, runs: pd.DataFrame) -> pd.DataFrame:
        """The rows of the DLN ablation's set-up asked for (a table without a column, e.g. an older one or W&B's,
        holds the protocol's)."""
        if "init" in runs:
            runs = runs[runs["init"].fillna("glorot") == self.init]
        if "data_seed" in runs and "seed" in runs:
            own = runs["data_seed"].isna() | (runs["data_seed"] == runs["seed"])
            runs = runs[own if self.data_seed is None else runs["data_seed"] == self.data_seed]
        for key in ("landscape_dtype", "landscape_norm_params"):
            if key in runs:
                runs = runs[runs[key].isna() | (runs[key] == getattr(self, key))]
        return runs

    def describe(self) -> str:
        """The requirements beyond the defaults, as a check's "not run" line says them ("" when none)."""
        where = "" if self.seed is None else f" seed {self.seed}"
        where += "" if self.init_scale == 1.0 else f" init scale {self.init_scale:g}"
        where += "" if self.init == "glorot" else f" init {self.init}"
        where += "" if self.data_seed is None else f" data seed {self.data_seed}"
        where += "" if self.landscape_dtype == "float32" else f" landscape in {self.landscape_dtype}"
        where += "" if self.landscape_norm_params else " landscape without the norm parameters"
        return where + ("" if self.batch_size is None else f" batch {self.batch_size}")


def select_runs(
    res: Results,
    pairs,
    scale: str | None = None,
    requires: Requires | None = None,
    figure: str = "runs",
    experiment: str | None = None,
) -> dict:
    """One `runs` row per (model, lr) pair, {pair: row}, each meeting `requires` (default: `Requires()`, the
    protocol's run); raises MissingRuns / MissingRecords (`figure`, `experiment`: what they name).

    With `scale`, only runs with that preset's numbers (`scale_numbers`). Without, the preset (paper,
    then small, then smoke) that covers the most pairs (with runs holding the required probes' records,
    then with runs at all); if no preset covers any, the best run of any numbers."""
    requires = requires or Requires()
    pairs = tuple((str(m), float(lr)) for m, lr in pairs)
    # remembered per Results: a report asks for the same runs hundreds of times (every study, seed and figure)
    memo = res.memo("select")
    key = (pairs, scale, requires, figure, experiment)
    if key not in memo:
        try:
            memo[key] = _select_runs(res, pairs, scale, requires, figure, experiment)
        except MissingRuns as e:
            memo[key] = e
    if isinstance(memo[key], MissingRuns):
        raise memo[key]
    return {k: row.copy() for k, row in memo[key].items()}


def _select_runs(res: Results, pairs, scale, requires: Requires, figure: str, experiment: str | None) -> dict:
    runs = res.runs
    if runs is None or not len(runs) or "model" not in runs:
        raise MissingRuns(figure, "no runs in the results", experiment, scale)
    # the rows meeting all but the probes, remembered per Results: many selections share their requirements
    rows_memo = res.memo("rows")
    unprobed = replace(requires, probes=())
    if unprobed not in rows_memo:
        rows_memo[unprobed] = requires.rows(runs)
    runs = rows_memo[unprobed]
    probes = requires.probes
    probed = [runs_with_probe(res, p) for p in probes]
    study = requires.batch_size is not None

    def candidates(frame):
        out, lacking = {}, {}
        for model, lr in pairs:
            ok = frame[(frame["model"] == model) & frame["lr"].map(lambda v, lr=lr: same_lr(v, lr))]
            for probe, ids in zip(probes, probed, strict=True):
                good = ok[ok["run_id"].isin(ids)]
                if len(ok) and not len(good):
                    used = ok["probes"].iloc[0] if "probes" in ok else "?"
                    lacking[(model, lr)] = (
                        f"{model} LR {lr:g} has no '{probe}' probe records "
                        f"(run {ok['run_id'].iloc[0]} trained with probes={used})"
                    )
                ok = good
            out[(model, lr)] = ok
        return out, lacking

    if scale is not None:
        chosen, lacking = candidates(rows_at_scale(runs, scale, study))
    else:
        options = [(s, *candidates(rows_at_scale(runs, s, study))) for s in SCALE_ORDER]
        best = max(options, key=lambda o: _coverage(o[1], o[2]))
        if any(_coverage(best[1], best[2])):
            scale, chosen, lacking = best
        else:
            chosen, lacking = candidates(runs)
    missing = [k for k, c in chosen.items() if not len(c)]
    if missing:
        absent = [k for k in missing if k not in lacking]
        where = f" at scale {scale}" if scale else ""
        parts = ["no runs of " + ", ".join(f"{m} LR {lr:g}" for m, lr in absent) + where] if absent else []
        parts += [lacking[k] for k in missing if k in lacking]
        cls = MissingRuns if absent else MissingRecords
        raise cls(figure, "; ".join(parts), experiment, scale)
    return {k: _best_run(c) for k, c in chosen.items()}
