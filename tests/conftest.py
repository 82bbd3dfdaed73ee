"""Shared fixtures: compose configs the way the CLI does, and train tiny runs into a temp results root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bnopt import experiments

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10"
SMOKE = ["data=synthetic", "scale=smoke", "logger=none"]


def make_cfg(overrides: list[str]):
    """The composed config `bnopt-train <overrides>` sees (Hydra's compose, its defaults list cached per
    set of group choices: experiments.compose_run)."""
    return experiments.compose_run(list(overrides))


def smoke_cfg(tmp_path: Path, *extra: str, model: str = "vgg16_bn"):
    base = SMOKE[1:] if model.startswith("dln") else SMOKE  # the DLN brings its own data
    return make_cfg([f"model={model}", *base, f"paths.results={tmp_path}", *extra])


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    """`python -m bnopt.train args...` in a subprocess; returns CompletedProcess (text)."""
    full_env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bnopt.train", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cifar_dir() -> Path:
    root = Path(os.environ.get("BNOPT_DATA") or SHARED_CIFAR)
    if not (root / "test.npz").exists():
        pytest.skip(f"real CIFAR-10 .npz shards not found at {root} (set BNOPT_DATA)")
    return root


def pytest_collection_modifyitems(config, items):
    """`slow` (skipped by `make test-fast`): tests that need the real CIFAR-10 (the `cifar_dir` fixture) or
    start a process (the CLI through `run_cli`, `subprocess`, a notebook kernel)."""
    import inspect

    for item in items:
        fn = getattr(item, "function", None)
        source = inspect.getsource(fn) if fn is not None else ""
        if "cifar_dir" in item.fixturenames or any(s in source for s in ("run_cli(", "subprocess.")):
            item.add_marker(pytest.mark.slow)
