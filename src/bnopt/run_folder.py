"""A run's folder while it trains: the lock that keeps a second process off it, the writes of its
records (status, frames, arrays, checkpoint, W&B id) and their repair when a finished run's records are
damaged. The layout it writes, and the reader every other module goes through, are bnopt.records."""

from __future__ import annotations

import fcntl
import io
import json
import secrets
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from .records import (
    CKPT_FILE,
    CONFIG_FILE,
    FINAL_STATUSES,
    METRICS_COLUMNS,
    METRICS_FILE,
    PROBE_COLUMNS,
    PROBES_FILE,
    SCHEMA_VERSION,
    STATUS_FILE,
    WANDB_ID_FILE,
    Checkpoint,
    CorruptRun,
    RunLocked,
    atomic_write_bytes,
    atomic_write_text,
    frame_to_parquet_bytes,
    one_line,
    read_frame,
    read_run,
)


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

    def is_trained_now(self) -> bool:
        """Whether a live process holds this run's lock (open() takes it; the kernel drops it when that
        process dies): a run whose status says `running` but whose lock is free was killed. Probes with
        a shared lock on a read-only handle, released at once: it creates no lock file."""
        try:
            with open(self.file(".lock"), "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except FileNotFoundError:
            return False
        except BlockingIOError:
            return True
        return False

    def is_finished(self) -> bool:
        """Done or diverged with readable records. A finished run whose records are corrupt is not
        finished: training it again (open() sets the damaged records aside) is the repair."""
        return (self.status() or {}).get("status") in FINAL_STATUSES and self._corrupt_final() is None

    def _corrupt_final(self) -> CorruptRun | None:
        """The problem of a run that says it is finished but whose records do not read; None otherwise."""
        if (self.status() or {}).get("status") not in FINAL_STATUSES:
            return None
        try:
            read_run(self.path)
        except CorruptRun as e:
            return e
        return None

    def open(self, cfg) -> None:
        self._acquire()
        problem = self._corrupt_final()
        if problem is not None:
            self._set_aside(problem.reason)
        atomic_write_text(self.file(CONFIG_FILE), OmegaConf.to_yaml(cfg))

    def _acquire(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.file(".lock"), "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise RunLocked(self.run_id, self.path) from None

    def _aside_dir(self) -> Path:
        """A new corrupt-<time>[-n]/ folder inside the run folder (n when one of this second exists)."""
        stem = f"corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
        dest, n = self.file(stem), 0
        while dest.exists():
            n += 1
            dest = self.file(f"{stem}-{n}")
        dest.mkdir()
        return dest

    def _set_aside(self, reason: str) -> None:
        """Move a finished run's damaged records (all of them: no final checkpoint could repair them, see
        rebuild_from_checkpoint) into corrupt-<time>/ inside the folder, so the run trains again from the
        start and nothing is deleted. Readers list runs/*/ only, so they never see the old copy."""
        dest = self._aside_dir()
        for entry in self.path.iterdir():
            if entry.name != ".lock" and not entry.name.startswith("corrupt-"):
                shutil.move(str(entry), str(dest / entry.name))
        print(
            f"bnopt: run {self.run_id} has corrupt records ({reason}); moved them to {dest} and "
            "training it again from the start",
            file=sys.stderr,
        )

    def rebuild_from_checkpoint(self) -> bool:
        """Repair a finished run whose metrics.parquet or probes.parquet is damaged from its final
        checkpoint, which holds every row: the damaged files go to corrupt-<time>/, the rows are written
        again, nothing is retrained. Returns whether the run is finished and readable now; False (nothing
        touched) when it needs no repair or the checkpoint cannot repair it (then `open` sets the records
        aside and the run trains again). Raises RunLocked when another process holds the run."""
        if self._corrupt_final() is None:
            return False
        self._acquire()
        try:
            return self._rebuild_frames()
        finally:
            self.close()

    def _rebuild_frames(self) -> bool:
        problem = self._corrupt_final()  # again, under the lock: another process may have repaired it
        if problem is None:
            return self.is_finished()
        damaged = self._damaged_frames()
        ckpt = self._final_checkpoint()
        if not damaged or ckpt is None:
            return False
        dest = self._aside_dir()
        for name in damaged:
            if self.file(name).exists():
                shutil.move(str(self.file(name)), str(dest / name))
        self.write_frame(METRICS_FILE, ckpt.rows)
        if ckpt.probe_rows:
            self.write_frame(PROBES_FILE, ckpt.probe_rows)
        if self._corrupt_final() is not None:  # damage beyond the frames: put them back, let open() set all aside
            for name in damaged:
                self.file(name).unlink(missing_ok=True)
                if (dest / name).exists():
                    shutil.move(str(dest / name), str(self.file(name)))
            dest.rmdir()
            return False
        print(
            f"bnopt: run {self.run_id} had damaged records ({problem.reason}); moved {', '.join(damaged)} to "
            f"{dest} and rebuilt {'them' if len(damaged) > 1 else 'it'} from the final checkpoint (not retrained)",
            file=sys.stderr,
        )
        return True

    def _damaged_frames(self) -> list[str]:
        """The frames (metrics.parquet, probes.parquet) that are missing where required or do not read."""
        damaged = []
        for name, columns in ((METRICS_FILE, METRICS_COLUMNS), (PROBES_FILE, PROBE_COLUMNS)):
            path = self.file(name)
            if not path.exists():
                damaged += [name] if name == METRICS_FILE else []
                continue
            try:
                read_frame(path, columns)
            except CorruptRun:
                damaged.append(name)
        return damaged

    def _final_checkpoint(self) -> Checkpoint | None:
        """The checkpoint when it reads and is the finished run's last one (its step is the steps done)."""
        try:
            ckpt = self._read_checkpoint()
        except Exception:  # unreadable: no repair from it (open() then sets everything aside)
            return None
        done = (self.status() or {}).get("steps_done")
        return ckpt if ckpt is not None and ckpt.step == done and ckpt.rows else None

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def write_status(self, status: str, **fields) -> None:
        st = self.status() or {}
        st.update(
            fields,
            status=status,
            run_id=self.run_id,
            schema_version=SCHEMA_VERSION,
            updated=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        atomic_write_text(self.file(STATUS_FILE), json.dumps(st, indent=2, default=str))

    def write_frame(self, name: str, rows: list[dict]) -> None:
        atomic_write_bytes(self.file(name), frame_to_parquet_bytes(pd.DataFrame(rows)))

    def write_arrays(self, name: str, arrays: dict) -> None:
        """A probe's array records as one compressed .npz (nothing written when there are none)."""
        if not arrays:
            return
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(self.file(name), buf.getvalue())

    def save_checkpoint(self, ckpt: Checkpoint) -> None:
        buf = io.BytesIO()
        torch.save(ckpt.to_dict(), buf)
        atomic_write_bytes(self.file(CKPT_FILE), buf.getvalue())

    def _read_checkpoint(self) -> Checkpoint | None:
        """The checkpoint, None when there is none; raises when unreadable or without its keys."""
        path = self.file(CKPT_FILE)
        if not path.exists():
            return None
        return Checkpoint.from_dict(torch.load(path, map_location="cpu", weights_only=False))

    def load_checkpoint(self) -> Checkpoint | None:
        """The checkpoint to resume from, or None. An unreadable one is moved to corrupt-<time>/ (one
        line says so), not overwritten by the next checkpoint: the run then trains from the start."""
        path = self.file(CKPT_FILE)
        try:
            return self._read_checkpoint()
        except Exception as e:  # torch.load raises many types; an unreadable checkpoint means: start again, loudly
            dest = self._aside_dir()
            shutil.move(str(path), str(dest / CKPT_FILE))
            print(
                f"bnopt: warning: checkpoint {path} unreadable ({one_line(e)}); moved it to {dest} and "
                "training from the start",
                file=sys.stderr,
            )
            return None

    def wandb_id(self, new: bool = False) -> str:
        """The W&B run id of this run's training, saved so that a resumed run appends to the same W&B
        run (online, or one `wandb sync` target offline) instead of making a duplicate. new=True (a
        start from step 0) draws a fresh one: a restart must not write over the steps of an earlier W&B
        run, which W&B would drop as out of order."""
        path = self.file(WANDB_ID_FILE)
        if not new and path.exists():
            saved = path.read_text().strip()
            if saved:
                return saved
        wid = f"{self.run_id[-10:]}-{secrets.token_hex(4)}"  # the config hash, then random: unique, legible
        atomic_write_text(path, wid + "\n")
        return wid
