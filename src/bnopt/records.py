"""Run folders (the source of truth); their W&B mirror is bnopt.wandb_mirror, their copies under
results/<scale>/runs bnopt.archive.

results/runs/<run_id>/
    config.yaml       the resolved config
    status.json       status (running | done | diverged | failed), timing, hardware, versions, schema_version,
                      resumes (how many times the run was resumed from a checkpoint)
    metrics.parquet   one row per training step (kind=train) and one per evaluation (kind=eval)
    probes.parquet    probe records (when probes are on)
    checkpoint.pt     model, optimiser, RNG states, records so far: what a resume needs
    wandb_id          the W&B run id of this run's current training (logger=wandb)
    wandb/            the offline W&B run (logger=wandb)

The layout is declared once here (SCHEMA_VERSION, *_FILE, *_COLUMNS) and checked by `read_run`, which
every reader goes through; bnopt.run_folder writes a run's folder while it trains. Every file is written
atomically (temp file in the same folder, then os.replace), so a kill never leaves a half-written file
that later reads as valid; `read_run` catches the rest (a full disk, a copy cut short, a hand edit).
"""

from __future__ import annotations

import io
import json
import os
import platform
import socket
import sys
import tempfile
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from omegaconf import DictConfig, OmegaConf

# --- the records schema -------------------------------------------------------------------------------
# Bump SCHEMA_VERSION when a file or column changes meaning. status.json without it was written before
# versioning, in the layout of version 1.
SCHEMA_VERSION = 1
STATUS_FILE, CONFIG_FILE, METRICS_FILE, PROBES_FILE, CKPT_FILE, WANDB_ID_FILE = (
    "status.json",
    "config.yaml",
    "metrics.parquet",
    "probes.parquet",
    "checkpoint.pt",
    "wandb_id",
)
HISTOGRAM_FILE = "activations.npz"  # array records of the activations probe (layer<k>_edges, _counts, ...)
FINAL_STATUSES = ("done", "diverged")
# Columns every reader may rely on. metrics.parquet has more (acc, lr, test_acc, ...) depending on the task.
METRICS_COLUMNS = ["step", "kind", "loss"]
PROBE_COLUMNS = ["step", "probe", "layer", "eta", "metric", "value"]
# config.yaml keys the run table (results.run_summary) is built from.
CONFIG_KEYS = (
    "model.name",
    "model.family",
    "model.norm",
    "model.width",
    "optim.lr",
    "optim.momentum",
    "scale.name",
    "scale.steps",
    "scale.batch_size",
    "seed",
    "data.name",
    "probes.name",
)


@dataclass
class Checkpoint:
    """checkpoint.pt: what a resume needs, and the one list of its keys (RunFolder writes these fields as a
    dict, in this order, and reads them back)."""

    step: int  # steps done
    model: dict  # state dicts
    optimizer: dict
    noise_gen: torch.Tensor  # the noisy-BN generator's state
    torch_rng: torch.Tensor  # torch's global CPU generator
    rows: list[dict]  # metrics.parquet and probes.parquet so far
    probe_rows: list[dict]
    elapsed: float  # seconds of training so far
    probes: list[dict] = field(default_factory=list)  # the probes' states (checkpoints older than them have none)

    @classmethod
    def from_dict(cls, saved: dict) -> Checkpoint:
        """The checkpoint torch.load read; KeyError naming the keys it lacks."""
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in saved]
        if missing:
            raise KeyError(f"no {', '.join(missing)}")
        return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # not asdict: that deep-copies the tensors


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
    """Raise OSError with a clear message unless `root` can hold run folders. Creates nothing: a run that
    stops on bad input later must not leave an empty results folder behind."""
    root = Path(root)
    existing = next(p for p in (root, *root.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise OSError(f"results directory {root} is not writable ({existing} is not a folder)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise OSError(f"results directory {root} is not writable ({e.strerror or e})") from None


def environment() -> dict:
    info = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


class RunLocked(RuntimeError):
    """Another process is training this run right now."""

    def __init__(self, run_id: str, path: Path):
        super().__init__(f"run {run_id} is being trained by another process ({path})")
        self.run_id, self.path = run_id, Path(path)


class CorruptRun(Exception):
    """A run folder whose records cannot be read; str() is one line: '<path>: <reason>'."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def one_line(e: BaseException) -> str:
    """'Type: first sentence' of an exception: torch and pyarrow add paragraphs of advice."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0].split('. ')[0]}" if text else type(e).__name__


@dataclass
class RunRecords:
    """A validated run folder: config and status, and its frames when read (None when absent)."""

    path: Path
    config: DictConfig
    status: dict
    metrics: pd.DataFrame | None = None
    probes: pd.DataFrame | None = None


def read_frame(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise CorruptRun(path.parent, f"{path.name} unreadable ({one_line(e)})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CorruptRun(path.parent, f"{path.name} lacks column(s) {', '.join(missing)}")
    return frame


def read_run(folder: Path, frames: bool = True, probes: bool = True) -> RunRecords:
    """Read and validate one run folder; raise CorruptRun naming the first problem.

    config.yaml must parse and hold CONFIG_KEYS; status.json, when present (a run killed while starting
    has none yet), must parse and not come from a newer schema; metrics.parquet (required once the run is
    done or diverged) and probes.parquet, when present, must read and hold their columns. With
    frames=False only config and status are read (cheap: for filtering before reading frames).
    """
    folder = Path(folder)
    try:
        cfg = OmegaConf.load(folder / CONFIG_FILE)
    except FileNotFoundError:
        raise CorruptRun(folder, f"no {CONFIG_FILE}") from None
    except Exception as e:  # yaml and omegaconf raise many types for a damaged file
        raise CorruptRun(folder, f"{CONFIG_FILE} unreadable ({one_line(e)})") from None
    if not isinstance(cfg, DictConfig):
        raise CorruptRun(folder, f"{CONFIG_FILE} is not a mapping")
    missing = [k for k in CONFIG_KEYS if OmegaConf.select(cfg, k, throw_on_missing=False) is None]
    if missing:
        raise CorruptRun(folder, f"{CONFIG_FILE} lacks {', '.join(missing)}")
    try:
        status = json.loads((folder / STATUS_FILE).read_text())
    except FileNotFoundError:
        status = {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptRun(folder, f"{STATUS_FILE} unreadable ({one_line(e)})") from None
    if not isinstance(status, dict):
        raise CorruptRun(folder, f"{STATUS_FILE} is not a JSON object")
    if status.get("schema_version", SCHEMA_VERSION) > SCHEMA_VERSION:
        raise CorruptRun(folder, f"written by a newer bnopt (schema {status['schema_version']} > {SCHEMA_VERSION})")
    rec = RunRecords(folder, cfg, status)
    return read_frames(rec, probes) if frames else rec


def read_frames(rec: RunRecords, probes: bool = True) -> RunRecords:
    """`rec` (read with frames=False) with its metrics and, if `probes`, probe frames read and validated: a
    reader that filtered on config and status first parses config.yaml once, not twice."""
    folder, status = rec.path, rec.status
    if (folder / METRICS_FILE).exists():
        rec.metrics = read_frame(folder / METRICS_FILE, METRICS_COLUMNS)
    elif status.get("status") in FINAL_STATUSES:
        raise CorruptRun(folder, f"{status['status']} but no {METRICS_FILE}")
    if probes and (folder / PROBES_FILE).exists():
        rec.probes = read_frame(folder / PROBES_FILE, PROBE_COLUMNS)
    return rec


# --- committed records ----------------------------------------------------------------------------------
# A report's runs are committed beside it (results/<scale>/runs/<run_id>/) so that a fresh clone can
# redraw the figures and report without training, and a reviewer can read the numbers they come from. A
# finished run's records are the files a reader needs: the checkpoint (only a resume needs it, and it holds
# megabytes of weights) and the W&B files stay out.
RECORDS_DIR = "runs"  # results/<scale>/runs/: a results root of its own (load_runs("results/small"))
ARCHIVE_FILES = (CONFIG_FILE, STATUS_FILE, METRICS_FILE, PROBES_FILE, HISTOGRAM_FILE)
