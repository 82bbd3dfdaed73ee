"""How long a planned run will take on this machine, from what `make bench` measured (results/bench.json).

    seconds = startup + steps * step * (1 + probe share) + evaluations * eval images * eval time per image

- step: the bench's ms per step of the run's model at the nearest width and batch; at another size, scaled
  by a fixed overhead plus a cost per unit of work (width^2 * batch), both fitted to the step of the model
  (else of another model of the family) at the two widths the bench timed: on a GPU a step is mostly kernel
  launches and does not shrink (a smoke step costs what a small one does); on 2 CPU cores 16x the work took
  11x the time. Without two timed widths, in proportion to the work. A model the bench did not time has no
  estimate. (A smoke step on 2 CPU cores, measured under load: 0.08-0.16 of a small one; this charges 0.35,
  the plain work ratio 0.016.)
- probe share: each enabled probe's measured cost per call in training steps of the timed model nearest the
  run's width (the run's own model first), divided by the run's cadence. A probe call is forward and
  backward passes of the run's own model, so its cost in the run's steps holds at every width and batch:
  at smoke scale (probes every 5 steps) the paper's probes are then about two thirds of the loop, as runs
  measure (issue 22: 57-74%); keeping a call's seconds at the timed width made them 99% on a CPU.
- eval: the bench's eval time per image of the family, times the images one evaluation scores
  (test set or `data.test_size`, plus `data.train_eval_size`), at every eval point and step 0.
- startup: the bench's measured wall time of starting a run's process (imports, Hydra) plus data load. Not
  measured, so not charged: a run's own set-up and cold first calls (CUDA context, cuDNN autotuning, W&B),
  which dominate a smoke run on a GPU (issue 22: 17 smoke runs this charges 2.3 min took 5.9 on the H200).

bench.json keeps one record per kind of machine (`machines`, keyed by GPU name or `cpu-<cores>`); a machine
with no record of its own gets no estimate rather than a wrong one.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from omegaconf import OmegaConf

from .records import environment

CIFAR_TEST_IMAGES = 10_000


class Speeds:
    """The measurements of one bench.json, looked up per run."""

    def __init__(self, bench: dict):
        self.bench = bench
        self.train = bench.get("train", [])
        self.probes = bench.get("probes", [])
        self.extra = bench.get("per_run", {})

    @classmethod
    def load(cls, path: Path) -> Speeds | None:
        """This machine's measurements in bench.json; None when there is no bench.json, it does not read, or
        it holds no record of this kind of machine."""
        try:
            bench = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return None
        record = machine_records(bench).get(machine_key(environment()))
        return cls(record) if record is not None else None

    def step_seconds(self, cfg) -> float | None:
        name, family = cfg.model.name, cfg.model.family
        batch = int(cfg.scale.batch_size)
        width = float(cfg.model.width) if family == "vgg" else 1.0
        row = self._nearest(self._rows(name), width, batch)
        if row is None:
            return None
        seconds = row["ms_per_step"] / 1000
        if (row["width"], row["batch_size"]) == (width, batch):
            return seconds
        return seconds * self._size_factor(name, family, (width, batch), (row["width"], row["batch_size"]))

    def _size_factor(self, name: str, family: str, size: tuple, timed: tuple) -> float:
        """Step time at `size` over step time at `timed` ((width, batch) each): time = overhead + cost * work,
        work = width^2 * batch, fitted to the run's model timed at two widths (else another model of the
        family, in a fixed order); proportional to the work without one. On a GPU the fit is flat (a step is
        kernel launches); on 2 CPU cores 16x the work took 11x the time."""

        def work(width: float, batch: int) -> float:
            return width**2 * batch

        others = sorted({r["model"] for r in self.train if r["model"] != name and r["model"].startswith(family)})
        for model in (name, *others):
            rows = self._rows(model)
            near = self._nearest(rows, *size)
            wider = [r for r in rows if near and r["width"] != near["width"] and r["batch_size"] == near["batch_size"]]
            far = self._nearest(wider, *size)
            if far is None:
                continue
            w_near, w_far = work(near["width"], near["batch_size"]), work(far["width"], far["batch_size"])
            cost = max((far["ms_per_step"] - near["ms_per_step"]) / (w_far - w_near), 0.0)
            overhead = near["ms_per_step"] - cost * w_near
            if overhead < 0:  # grew faster than the work: proportional
                overhead, cost = 0.0, near["ms_per_step"] / w_near
            return (overhead + cost * work(*size)) / (overhead + cost * work(*timed))
        return work(*size) / work(*timed)

    def _rows(self, model: str) -> list[dict]:
        """The train-loop rows of a model (not the bare or DataLoader comparison cases)."""
        return [r for r in self.train if r["model"] == model and not r["case"].endswith(("bare", "dataloader"))]

    @staticmethod
    def _nearest(rows: list[dict], width: float, batch: int) -> dict | None:
        return min(rows, key=lambda r: (abs(r["width"] - width), abs(r["batch_size"] - batch)), default=None)

    def probe_share(self, cfg) -> float:
        """Probe time per training step, as a fraction of the step: each enabled probe's cost per call in
        training steps, from the timed model nearest the run's width that timed that probe (the run's own model
        first, else the family's: the bench times B1's hessian and B10's rank probes only at the small width
        and on the DLN), over the probe's cadence."""
        name, family = cfg.model.name, cfg.model.family
        timed = [r for r in self.probes if r["model"].startswith("vgg" if family == "vgg" else "dln")]
        if not timed or cfg.probes.get("name") == "none":
            return 0.0
        width = float(cfg.model.width)
        share = 0.0
        for probe, sub in cfg.probes.items():
            every = int(sub.get("every") or 0) if hasattr(sub, "get") and sub.get("enabled", True) else 0
            rows = [r for r in timed if probe in r["probe_call_in_train_steps"]]
            if every <= 0 or not rows:
                continue
            row = min(rows, key=lambda r: (abs(r["width"] - width), r["model"] != name))
            share += row["probe_call_in_train_steps"][probe] / every
        return share

    def eval_seconds(self, cfg) -> float:
        per_image = self.extra.get("eval_ms_per_image", {}).get(cfg.model.family)
        if not per_image:
            return 0.0
        d = cfg.data
        if cfg.model.family == "vgg":
            test = int(d.get("test_size") or (d.get("n_test") if d.get("source") == "synthetic" else 0) or 0)
            images = (test or CIFAR_TEST_IMAGES) + int(d.get("train_eval_size") or 0)
        else:
            images = int(d.get("n_samples") or 0)
        evals = int(cfg.scale.steps) // max(int(cfg.scale.eval_every), 1) + 1
        return evals * images * per_image / 1000

    def run_seconds(self, cfg, steps_done: int = 0) -> float | None:
        """Remaining wall time of a run with this resolved config, or None if the bench did not time its model."""
        step = self.step_seconds(cfg)
        if step is None:
            return None
        left = max(int(cfg.scale.steps) - steps_done, 0)
        frac_left = left / max(int(cfg.scale.steps), 1)
        train = left * step * (1 + self.probe_share(cfg))
        return float(self.extra.get("startup_s", 0.0)) + train + frac_left * self.eval_seconds(cfg)


def machine_key(env: dict) -> str:
    """The kind of machine a bench record is valid for: the GPU's name, or the CPU's core count."""
    return str(env["gpu"]) if env.get("cuda") and env.get("gpu") else f"cpu-{env.get('cpu_count')}"


def machine_records(bench: dict) -> dict[str, dict]:
    """{machine key: record} of a bench.json: one record per kind of machine (`machines`), or an older
    file that holds one record at its top level."""
    if isinstance(bench.get("machines"), dict):
        return dict(bench["machines"])
    return {machine_key(bench["environment"]): bench} if isinstance(bench.get("environment"), dict) else {}


def run_signature(cfg) -> str:
    """What sets a run's wall time on a given machine: its model and width, steps, batch, evaluation cadence and
    probes (with their cadence). Not its LR, seed or initialisation: runs that differ only there take as long."""
    m, sc = cfg.model, cfg.scale
    what = {
        "model": [m.name, float(m.get("width", 1.0))],
        "scale": [int(sc.steps), int(sc.batch_size), int(sc.get("eval_every") or 0)],
        "probes": _without_seeds(OmegaConf.to_container(cfg.probes, resolve=True)),
    }
    return json.dumps(what, sort_keys=True, default=str)


def _without_seeds(value):
    """A probe config without its seeds (the landscape probe's follows the run's): they change no cost."""
    if isinstance(value, dict):
        return {k: _without_seeds(v) for k, v in value.items() if k != "seed"}
    return value


class Measured:
    """Seconds per step of the runs finished on this kind of machine with this many torch threads, by
    `run_signature`: the median of elapsed_s / steps (the wall time a run's status.json adds up over its
    resumes, start-up and evaluations included). Where a planned run has finished twins, their time is a
    better estimate than the bench's model of it (which ran 1.7x low on 2 CPU cores, 2026-12-07)."""

    def __init__(self, per_step: dict[str, float]):
        self.per_step = per_step

    @classmethod
    def of(cls, finished: list[tuple]) -> Measured:
        """From (resolved config, status.json dict) of finished runs; only runs with status done, trained on a
        machine of this one's kind (`machine_key`) with this process's thread count."""
        here = environment()
        seen: dict[str, list[float]] = {}
        for cfg, status in finished:
            env, steps = status.get("environment") or {}, int(status.get("steps_done") or 0)
            elapsed = status.get("elapsed_s")
            if status.get("status") != "done" or not steps or not elapsed or not env:
                continue
            if machine_key(env) != machine_key(here) or env.get("cpu_threads") != here["cpu_threads"]:
                continue
            seen.setdefault(run_signature(cfg), []).append(float(elapsed) / steps)
        return cls({sig: statistics.median(v) for sig, v in seen.items()})

    def run_seconds(self, cfg, steps_done: int = 0) -> float | None:
        per_step = self.per_step.get(run_signature(cfg))
        return None if per_step is None else per_step * max(int(cfg.scale.steps) - steps_done, 0)
