"""The test tiers hold (tests/conftest.py): a test doing more than its tier allows fails and names the marker it
needs, even when it catches the error; collection stops on the real CIFAR-10 outside e2e and on a test in two
tiers; `slow` is every test outside the unit tier, and a test marked only `slow` is an integration test. Tests run
in this process (pytester), under the conftest's own hooks."""

from __future__ import annotations

import pytest

CONFTEST = """
from tests.conftest import (  # noqa: F401
    cifar_dir,
    pytest_collection_modifyitems,
    pytest_runtest_call,
    pytest_runtest_protocol,
)
"""

TESTS = """
import subprocess

import pytest
import torch
from matplotlib.figure import Figure


def train(steps):
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    for _ in range(steps):
        w.sum().backward()
        opt.step()


def test_starts_a_process():
    subprocess.run(["true"], check=True)


def test_catches_the_error():
    try:
        subprocess.run(["true"], check=True)
    except Exception:
        pass


def test_trains_eleven_steps():
    train(11)


def test_writes_a_figure(tmp_path):
    Figure().savefig(tmp_path / "f.png")


def test_takes_ten_steps():
    train(10)


@pytest.mark.integration
def test_integration_trains_and_draws(tmp_path):
    train(11)
    Figure().savefig(tmp_path / "f.png")


@pytest.mark.integration
def test_integration_starts_a_process():
    subprocess.run(["true"], check=True)


@pytest.mark.e2e
def test_e2e_starts_a_process():
    subprocess.run(["true"], check=True)


@pytest.mark.slow
def test_marked_only_slow():
    train(11)
"""


@pytest.fixture
def tiers(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_work=TESTS)
    return pytester


def mark_it(test: str, what: str, marker: str) -> str:
    return f"*test_work.py::{test} {what}: mark it @pytest.mark.{marker} (tiers: tests/conftest.py)*"


def test_a_test_that_does_more_than_its_tier_fails_and_names_its_marker(tiers):
    result = tiers.runpytest_inprocess("-p", "no:cacheprovider", "--tb=line")
    result.assert_outcomes(passed=4, failed=5)
    process = "starts a process (true)"
    result.stdout.fnmatch_lines_random(
        [
            "FAILED test_work.py::test_starts_a_process - *",
            mark_it("test_starts_a_process", process, "e2e"),
            "FAILED test_work.py::test_catches_the_error - *",
            mark_it("test_catches_the_error", process, "e2e"),
            mark_it("test_trains_eleven_steps", "takes more than 10 optimizer steps", "integration"),
            mark_it("test_writes_a_figure", "writes a figure file", "integration"),
            mark_it("test_integration_starts_a_process", process, "e2e"),
        ]
    )


def test_slow_is_every_test_outside_the_unit_tier(tiers):
    unit = tiers.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q", "-m", "not slow")
    unit.stdout.fnmatch_lines(["*::test_starts_a_process", "*::test_takes_ten_steps", "5/9 tests collected*"])
    integration = tiers.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q", "-m", "integration")
    integration.stdout.fnmatch_lines(["*::test_integration_trains_and_draws", "*::test_marked_only_slow", "3/9 *"])


def test_the_real_cifar10_outside_e2e_or_two_tiers_stop_the_collection(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_data="""
        import pytest

        def test_reads_cifar(cifar_dir):
            pass

        @pytest.mark.e2e
        def test_reads_cifar_e2e(cifar_dir):
            pass

        @pytest.mark.e2e
        @pytest.mark.integration
        def test_in_two_tiers():
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-m", "not slow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*tests outside their tier:",
            "*test_data.py::test_reads_cifar uses cifar_dir: mark it @pytest.mark.e2e",
            "*test_data.py::test_in_two_tiers is marked integration and e2e: keep one tier",
        ]
    )
    assert "test_reads_cifar_e2e" not in result.stderr.str()
