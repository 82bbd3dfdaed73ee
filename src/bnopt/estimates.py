"""How long a planned run will take on this machine, from what `make bench` measured (results/bench.json).

    seconds = startup + steps * step * (1 + probe share) + evaluations * eval images * eval time per image

- step: the bench's ms per step of the run's model at the nearest width and batch, scaled by the batch
  ratio and, at another width, by the width ratio of a model of the family timed at both widths (else
  (width ratio)^2, the conv cost); a model the bench did not time has no estimate.
- probe share: each enabled probe's measured cost per call (the timed model nearest the run's width, the
  run's own model first), over the run's step time, divided by the run's cadence.
- eval: the bench's eval time per image of the family, times the images one evaluation scores
  (test set or `data.test_size`, plus `data.train_eval_size`), at every eval point and step 0.
- startup: the bench's measured wall time of starting a run's process (imports, Hydra) plus data load.

bench.json keeps one record per kind of machine (`machines`, keyed by GPU name or `cpu-<cores>`); a machine
with no record of its own gets no estimate rather than a wrong one.
"""

from __future__ import annotations

import json
from pathlib import Path

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
        seconds = row["ms_per_step"] / 1000 * batch / row["batch_size"]
        if row["width"] == width:
            return seconds
        # Another width: scale by how a model of the family timed at both widths scales (on a GPU a step
        # is mostly kernel launches and barely grows with width); failing that, by width^2 (conv cost).
        for other in sorted({r["model"] for r in self.train if r["model"] != name}):  # a fixed order
            at = {w: self._nearest(self._rows(other), w, batch) for w in (width, row["width"])}
            if all(r is not None and r["width"] == w for w, r in at.items()):
                return seconds * at[width]["ms_per_step"] / at[row["width"]]["ms_per_step"]
        return seconds * (width / row["width"]) ** 2

    def _rows(self, model: str) -> list[dict]:
        """The train-loop rows of a model (not the bare or DataLoader comparison cases)."""
        return [r for r in self.train if r["model"] == model and not r["case"].endswith(("bare", "dataloader"))]

    @staticmethod
    def _nearest(rows: list[dict], width: float, batch: int) -> dict | None:
        return min(rows, key=lambda r: (abs(r["width"] - width), abs(r["batch_size"] - batch)), default=None)

    def probe_share(self, cfg) -> float:
        """Probe time per training step, as a fraction of the step. Each enabled probe's cost is taken from
        the timed model nearest the run's width that timed that probe (the run's own model first, else the
        family's: the bench times B1's hessian and B10's rank probes only at the small width and on the DLN),
        in seconds, over the run's own step time."""
        name, family = cfg.model.name, cfg.model.family
        timed = [r for r in self.probes if r["model"].startswith("vgg" if family == "vgg" else "dln")]
        if not timed or cfg.probes.get("name") == "none":
            return 0.0
        width = float(cfg.model.width)
        step = None
        share = 0.0
        for probe, sub in cfg.probes.items():
            every = int(sub.get("every") or 0) if hasattr(sub, "get") and sub.get("enabled", True) else 0
            rows = [r for r in timed if probe in r["probe_call_in_train_steps"]]
            if every <= 0 or not rows:
                continue
            row = min(rows, key=lambda r: (abs(r["width"] - width), r["model"] != name))
            # The row's costs are in steps of the model it timed; for another model or width, convert them to
            # the run's steps through seconds (the same model at the same width keeps the probe bench's own
            # ratio: two separate timings of one step only add noise).
            scale = 1.0
            if not (row["model"] == name and row["width"] == width) and row.get("ms_per_train_step"):
                step = step or self.step_seconds(cfg)
                scale = row["ms_per_train_step"] / 1000 / step if step else 1.0
            share += row["probe_call_in_train_steps"][probe] * scale / every
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
