"""The W&B mirror of a run's records (logger=wandb): the run folder stays the source of truth, and any W&B
failure prints one warning while local records go on."""

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
