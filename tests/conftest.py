"""Shared fixtures (compose configs the way the CLI does, train tiny runs into a temp results root) and the
three test tiers.

Tiers (pyproject.toml's markers, README "Install and test"):
- unit, no marker (`make test-fast`, under a minute on 2 cores): in-process and small: a few configs composed at
  most, at most a few optimizer steps, no figure files, no process, no real CIFAR-10.
- `@pytest.mark.integration` (`make test-integration`): composes plans, sweeps or many configs, trains smoke runs
  in-process, runs the probes on a whole network, writes a whole report, draws figures.
- `@pytest.mark.e2e` (`make test-e2e`): starts processes (the CLI, notebook kernels, W&B's service), reads the
  real CIFAR-10, regenerates the committed report.
`slow` stays for `-m "not slow"` (the unit tier): every integration and e2e test carries it, and a test marked
only `slow` is an integration test.

A test cannot sit below the tier of what it does. Collection stops on an e2e fixture in a test not marked e2e;
a test fails when it starts a process outside e2e, or when, unmarked, it writes a figure, composes a plan or
trains (see `Guard`). Markers are checked, never guessed from the test's source.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hydra._internal.hydra import Hydra
from matplotlib.figure import Figure
from torch.optim.optimizer import register_optimizer_step_post_hook

from bnopt import experiments

pytest_plugins = ["pytester"]  # tests/test_tiers.py runs tests under these tiers

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


# ------------------------------------------------------------------------------------------------ tiers

UNIT, INTEGRATION, E2E = "unit", "integration", "e2e"
E2E_FIXTURES = {"cifar_dir"}  # the real CIFAR-10
# Processes libraries start once to probe the machine (platform's `uname -p`, ctypes' `ldconfig -p` under
# torch.cuda.is_available, matplotlib's font scan): not a process of the test's own.
PROBING_TOOLS = {"uname", "ldconfig", "fc-list"}
UNIT_MAX_STEPS = 10  # optimizer steps: "a few synthetic steps"; a smoke run takes 20 or more
UNIT_MAX_COMPOSITIONS = 20  # Hydra compositions: one option group takes at most 11, a plan 40 or more
TIER_KEY = pytest.StashKey[str]()


class TierError(Exception):
    """A test does what its tier rules out: the message names the test and the marker it needs."""


def tier_of(item: pytest.Item) -> str:
    names = {m.name for m in item.iter_markers()}
    if E2E in names:
        return E2E
    return INTEGRATION if names & {INTEGRATION, "slow"} else UNIT


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: `-m "not slow"` reads the slow markers added here
def pytest_collection_modifyitems(config, items):
    misplaced = []
    for item in items:
        tier = item.stash[TIER_KEY] = tier_of(item)
        if tier != UNIT:
            item.add_marker(pytest.mark.slow)
        if tier == INTEGRATION:
            item.add_marker(pytest.mark.integration)  # a test marked only `slow` is selected by -m integration
        fixtures = sorted(E2E_FIXTURES & set(getattr(item, "fixturenames", ())))
        if fixtures and tier != E2E:
            misplaced.append(f"{item.nodeid} uses {', '.join(fixtures)}: mark it @pytest.mark.e2e")
        if {INTEGRATION, E2E} <= {m.name for m in item.iter_markers()}:  # -m integration would run it too
            misplaced.append(f"{item.nodeid} is marked integration and e2e: keep one tier")
    if misplaced:
        raise pytest.UsageError("tests outside their tier:\n  " + "\n  ".join(misplaced))


@dataclass
class Running:
    """One running test: what it has done so far."""

    test: str
    tier: str
    counts: Counter = field(default_factory=Counter)
    overstepped: list[str] = field(default_factory=list)


class Guard:
    """What the running test does that its tier rules out. Each kind of work is counted where it happens
    (subprocess.Popen and os.system, an optimizer step hook, Hydra's compose, Figure.savefig); the first
    overstep raises TierError there, and the test fails after its call even if it caught the error. A stack:
    tests/test_tiers.py runs tests inside a test."""

    def __init__(self):
        self.running: list[Running] = []

    def start(self, item: pytest.Item) -> None:
        self.running.append(Running(item.nodeid, item.stash.get(TIER_KEY, UNIT)))

    def stop(self) -> None:
        self.running.pop()

    def overstep(self, run: Running, what: str, marker: str) -> None:
        message = f"{run.test} {what}: mark it @pytest.mark.{marker} (tiers: tests/conftest.py)"
        run.overstepped.append(message)
        raise TierError(message)

    def process(self, argv) -> None:
        run = self.running[-1] if self.running else None  # None: collection, the session's start and end
        if run is None or run.tier == E2E:
            return
        command = os.fsdecode(argv) if isinstance(argv, str | bytes) else " ".join(map(os.fsdecode, argv))
        if Path(command.split(" ", 1)[0]).name not in PROBING_TOOLS:
            self.overstep(run, f"starts a process ({command[:120]})", E2E)

    def count(self, kind: str, limit: int, what: str) -> None:
        run = self.running[-1] if self.running else None
        if run is None or run.tier != UNIT:
            return
        run.counts[kind] += 1
        if run.counts[kind] > limit:
            self.overstep(run, what, INTEGRATION)

    def check(self, error: BaseException | None = None) -> None:
        overstepped = self.running[-1].overstepped if self.running else []
        if overstepped and not isinstance(error, TierError):
            raise TierError(overstepped[0]) from error


GUARD = Guard()
register_optimizer_step_post_hook(
    lambda *_: GUARD.count("steps", UNIT_MAX_STEPS, f"takes more than {UNIT_MAX_STEPS} optimizer steps")
)


def counted(method, kind: str, limit: int, what: str):
    def wrapper(*args, **kwargs):
        GUARD.count(kind, limit, what)
        return method(*args, **kwargs)

    return wrapper


Hydra.compose_config = counted(
    Hydra.compose_config,
    "compositions",
    UNIT_MAX_COMPOSITIONS,
    f"composes more than {UNIT_MAX_COMPOSITIONS} configs with Hydra (a plan or a sweep)",
)
Figure.savefig = counted(Figure.savefig, "figures", 0, "writes a figure file")


POPEN_INIT, SYSTEM = subprocess.Popen.__init__, os.system  # every way the tests and bnopt start a process


def guarded_popen_init(self, args, *rest, **kwargs):
    GUARD.process(args)
    POPEN_INIT(self, args, *rest, **kwargs)


def guarded_system(command):
    GUARD.process(command)
    return SYSTEM(command)


subprocess.Popen.__init__ = guarded_popen_init
os.system = guarded_system


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    GUARD.start(item)  # setup, call and teardown: a fixture's work counts for the test that first asks for it
    try:
        return (yield)
    finally:
        GUARD.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        result = yield
    except BaseException as error:  # a TierError the test swallowed may have turned into another failure
        GUARD.check(error)
        raise
    GUARD.check()
    return result
