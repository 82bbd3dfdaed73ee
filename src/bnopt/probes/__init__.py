"""Measurements taken inside training (PAPER.md, Protocol): landscape, ics, activations, gradnorms.

A probe is called after the step's backward pass and before the optimiser step, with a `ProbeContext`:
the model (train mode, parameters' .grad holding the step's training gradient), the step's batch, its
loss, the optimiser and the task. A probe returns tidy record rows and must leave no trace on training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ProbeContext:
    step: int
    model: torch.nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    loss: torch.Tensor
    optimizer: torch.optim.Optimizer
    task: object


class Probe:
    """Base: `every` steps (0 = never), state_dict for resume."""

    name = "probe"

    def __init__(self, every: int):
        self.every = int(every)

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def __call__(self, ctx: ProbeContext) -> list[dict]:
        raise NotImplementedError

    def wandb(self, rows: list[dict]) -> dict:
        """W&B payload for the rows this probe just returned (logged at the probe's step)."""
        return {}

    def save(self, folder) -> None:
        """Write any extra record files (e.g. histogram arrays) into the run folder; called at checkpoints."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def build_probes(cfg, model, task) -> list[Probe]:
    """The probes the config asks for (none yet beyond `probes=none`)."""
    if cfg.probes.name == "none":
        return []
    raise ValueError(f"unknown probes preset {cfg.probes.name!r}")
