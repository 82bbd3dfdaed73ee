"""Reader for W&B's offline `run-*.wandb` files (wandb ships no Python reader since 0.2x).

Layout: a 7-byte header (b":W&B", 2-byte magic, 1-byte version), then LevelDB-style log blocks of 32 KiB.
Each record fragment has a 7-byte header: crc32 (4, little endian), length (2), type (1: full, 2: first,
3: middle, 4: last); a block tail shorter than a header is padding. Payloads are
`wandb_internal_pb2.Record` protobuf messages.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_payloads(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B log file")
    pos, out, pending = HEADER, [], b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:  # zero fill to the end of the block
            pos += left
            continue
        payload = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            out.append(payload)
        elif kind == FIRST:
            pending = payload
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            out.append(pending + payload)
    return out


def read_history(path: Path) -> list[dict]:
    """The logged history rows: [{key: value, ..., '_step': n}, ...]."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for payload in read_payloads(path):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(payload)
        if rec.WhichOneof("record_type") != "history":
            continue
        row = {}
        for item in rec.history.item:
            key = item.key or "/".join(item.nested_key)
            row[key] = json.loads(item.value_json)
        rows.append(row)
    return rows


def logged_by_step(run_path: Path) -> dict[int, dict]:
    """Every value a run's offline W&B file holds, merged per step: {step: {key: value}} (the run folder
    must hold one offline W&B run)."""
    files = list(Path(run_path).glob("wandb/offline-run-*"))
    assert len(files) == 1, files
    return logged_in(files[0])


def logged_in(offline_run: Path) -> dict[int, dict]:
    """Every value one offline W&B run folder (wandb/offline-run-*) holds, merged per step.

    `run.finish()` returns before W&B's service process has necessarily written the last blocks of the
    file (seen on a loaded CI host: the rows after the first 32 KiB block were missing), so the service
    is shut down first, as it is when a training process exits."""
    import wandb

    wandb.teardown()
    files = list(Path(offline_run).glob("run-*.wandb"))
    assert len(files) == 1, files
    logged: dict[int, dict] = {}
    for row in read_history(files[0]):
        logged.setdefault(row["_step"], {}).update(row)
    return logged
