"""Run folders (the source of truth) and their W&B mirror.

results/runs/<run_id>/
    config.yaml       the resolved config
    status.json       status (running | done | diverged | failed), timing, hardware, versions
    metrics.parquet   one row per training step (kind=train) and one per evaluation (kind=eval)
    probes.parquet    probe records (when probes are on)
    checkpoint.pt     model, optimiser, RNG states, records so far: what a resume needs
    wandb/            the offline W&B run (logger=wandb)

Every file is written atomically (temp file in the same folder, then os.replace), so a kill never leaves
a half-written file that later reads as valid.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import platform
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf

STATUS_FILE, CONFIG_FILE, METRICS_FILE, PROBES_FILE, CKPT_FILE = (
    "status.json", "config.yaml", "metrics.parquet", "probes.parquet", "checkpoint.pt")
FINAL_STATUSES = ("done", "diverged")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def frame_to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def check_writable(root: Path) -> None:
    """Raise OSError with a clear message unless `root` can hold run folders."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as e:
        raise OSError(f"results directory {root} is not writable ({e.strerror or e})") from None


def environment() -> dict:
    import numpy

    info = {
        "host": socket.gethostname(), "platform": platform.platform(), "python": sys.version.split()[0],
        "torch": torch.__version__, "numpy": numpy.__version__, "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


class RunLocked(RuntimeError):
    """Another process is training this run right now."""


class RunFolder:
    """One run's folder. Holds an exclusive lock while a process trains it."""

    def __init__(self, root: Path, run_id: str):
        self.path = Path(root) / "runs" / run_id
        self.run_id = run_id
        self._lock = None

    def file(self, name: str) -> Path:
        return self.path / name

    def status(self) -> dict | None:
        try:
            return json.loads(self.file(STATUS_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_finished(self) -> bool:
        st = self.status()
        return bool(st) and st.get("status") in FINAL_STATUSES

    def open(self, cfg) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.file(".lock"), "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise RunLocked(f"run {self.run_id} is being trained by another process ({self.path})") from None
        atomic_write_text(self.file(CONFIG_FILE), OmegaConf.to_yaml(cfg))

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def write_status(self, status: str, **fields) -> None:
        st = self.status() or {}
        st.update(fields, status=status, run_id=self.run_id, updated=time.strftime("%Y-%m-%dT%H:%M:%S"))
        atomic_write_text(self.file(STATUS_FILE), json.dumps(st, indent=2, default=str))

    def write_frame(self, name: str, rows: list[dict]) -> None:
        atomic_write_bytes(self.file(name), frame_to_parquet_bytes(pd.DataFrame(rows)))

    def save_checkpoint(self, state: dict) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.file(CKPT_FILE), buf.getvalue())

    def load_checkpoint(self) -> dict | None:
        path = self.file(CKPT_FILE)
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # an unreadable checkpoint means: start again, loudly
            warnings.warn(f"checkpoint {path} unreadable ({e}); training from the start", stacklevel=2)
            return None


class WandbMirror:
    """Mirror of the records in W&B. Any W&B failure prints one warning; local records go on."""

    def __init__(self, cfg, run_folder: RunFolder, resume: bool):
        self.run = None
        lg = cfg.logger
        if lg.name != "wandb" or lg.mode == "disabled":
            return
        try:
            import wandb

            (run_folder.path / "wandb").parent.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(
                project=lg.project, entity=lg.get("entity"), mode=lg.mode, dir=str(run_folder.path),
                group=cfg.experiment_name, tags=[str(t) for t in cfg.get("tags", [])] + [cfg.model.name],
                name=run_folder.run_id, id=run_folder.run_id if lg.mode == "online" else None,
                resume="allow" if lg.mode == "online" else None,
                config=OmegaConf.to_container(cfg, resolve=True), reinit="finish_previous",
                settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
            )
            if resume:
                self.run.tags = tuple(self.run.tags) + ("resumed",)
        except Exception as e:
            self._fail("init", e)

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
