"""The W&B mirror of a run's records (logger=wandb): the run folder stays the source of truth, and any W&B
failure prints one warning while local records go on. Also the shape of what W&B gets: a training row's
payload (with its step's probe scalars), an evaluation's, and the history a resumed run sends to catch up."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from .run_folder import RunFolder

# wandb.init waits 90 s by default before giving up on an unreachable server; a run should not sit
# silently that long before its local training starts.
WANDB_INIT_TIMEOUT_S = 20


class WandbMirror:
    """Mirror of the records in W&B. Any W&B failure prints one warning; local records go on."""

    def __init__(self, cfg, run_folder: RunFolder, resume: bool):
        self.run = None
        self.sync_dir: Path | None = None  # this attempt's offline run folder (logger.mode=offline)
        self.url: str | None = None  # the run's page (logger.mode=online)
        lg = cfg.logger
        if lg.name != "wandb" or lg.mode == "disabled":
            return
        try:
            import wandb

            run_folder.path.mkdir(parents=True, exist_ok=True)
            timeout = float(lg.get("init_timeout") or WANDB_INIT_TIMEOUT_S)
            if lg.mode == "online":
                print(
                    f"bnopt: connecting to W&B (online) ... (gives up after {timeout:g} s; "
                    "logger.mode=offline needs no network)",
                    flush=True,
                )
            self.run = wandb.init(
                project=lg.project,
                entity=lg.get("entity"),
                mode=lg.mode,
                dir=str(run_folder.path),
                group=cfg.experiment_name,
                tags=[str(t) for t in (cfg.get("figure"), cfg.model.name) if t],
                name=run_folder.run_id,
                id=run_folder.wandb_id(new=not resume),
                resume="allow",
                config=OmegaConf.to_container(cfg, resolve=True),
                reinit="finish_previous",
                settings=wandb.Settings(silent=True, console="off", x_disable_stats=True, init_timeout=timeout),
            )
            if resume:
                self.run.tags = tuple(self.run.tags) + ("resumed",)
            if self.run.offline:
                self.sync_dir = Path(self.run.sync_dir)
            else:
                self.url = self.run.url
        except Exception as e:
            self._fail("init", e)

    def catch_up(self, logged: list[tuple[int, dict]]) -> int:
        """Send a resumed run's rows that W&B lacks, in order, before training goes on; returns how many.

        `logged` is every (step, payload) the run's records hold, in the order training logged them. What
        W&B holds is not what this process last logged (a killed process's W&B service loses what it had
        not written yet), so W&B is asked: online, a resumed run starts at the server's next step and
        everything from there is sent (W&B drops steps below it); offline, a resumed run starts empty at
        step 0 and everything is sent, so the newest offline run folder holds the whole history (`wandb
        sync` of a later offline run of the same id replaces what an earlier one uploaded)."""
        if self.run is None:
            return 0
        try:
            first = int(self.run.starting_step)
        except Exception as e:
            self._fail("resume", e)
            return 0
        missing = [(step, payload) for step, payload in logged if step >= first]
        for step, payload in missing:
            self.log(payload, step=step)
        return len(missing) if self.run is not None else 0

    def _fail(self, what: str, e: Exception) -> None:
        print(f"warning: W&B {what} failed ({type(e).__name__}: {e}); local records continue", file=sys.stderr)
        self.run = None

    def log(self, data: dict, step: int) -> None:
        if self.run is None:
            return
        try:
            self.run.log(data, step=step)
        except Exception as e:
            self._fail("log", e)

    def summary(self, data: dict) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update(data)
        except Exception as e:
            self._fail("summary", e)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is None:
            return
        try:
            self.run.finish(exit_code=exit_code)
        except Exception as e:
            self._fail("finish", e)
        self.run = None


def train_payload(row: dict, probe_payload: dict) -> dict:
    """What W&B gets for a training row: its values under train/, with its step's probe scalars (W&B drops
    a row logged at a step below one already logged, so they travel together)."""
    return {**{f"train/{k}": v for k, v in row.items() if k not in ("step", "kind")}, **probe_payload}


def eval_payload(row: dict) -> dict:
    return {f"eval/{k}": v for k, v in row.items() if k not in ("step", "kind")}


def wandb_history(rows: list[dict], probe_rows: list[dict], probes) -> list[tuple[int, dict]]:
    """Every (step, payload) training logged to W&B for these records, in the order it logged them:
    what a resumed run sends W&B where W&B lacks it. Probe payloads are rebuilt from the probe rows
    (an activations histogram is not: only the probe's own step has its histogram)."""
    by_probe = {p.name: p for p in probes}
    at_step: dict[tuple[int, str], list[dict]] = {}
    for r in probe_rows:
        at_step.setdefault((r["step"], r["probe"]), []).append(r)
    probe_payloads: dict[int, dict] = {}
    for (step, name), group in at_step.items():
        if name in by_probe:
            probe_payloads.setdefault(step, {}).update(by_probe[name].wandb(group))
    return [
        (r["step"], train_payload(r, probe_payloads.get(r["step"], {})) if r["kind"] == "train" else eval_payload(r))
        for r in rows
    ]
