"""A scale preset's probe cadence given as one number (issue 9's case: `scale.vgg.probe_every=5` vs `=6`)."""

from __future__ import annotations

import pytest

from bnopt.config import resolve, run_id

from .conftest import make_cfg

SMOKE_VGG = ["model=vgg16_bn", "data=synthetic", "scale=smoke", "probes=paper", "logger=none"]
PROBES = ("landscape", "ics", "activations", "gradnorms")


@pytest.mark.parametrize("key", ["scale.vgg.probe_every", "scale.probe_every"])
def test_one_number_sets_every_probes_cadence_and_two_numbers_are_two_runs(key):
    five = resolve(make_cfg([*SMOKE_VGG, f"{key}=5"]))
    six = resolve(make_cfg([*SMOKE_VGG, f"{key}=6"]))
    assert [five.probes[p].every for p in PROBES] == [5] * 4
    assert [six.probes[p].every for p in PROBES] == [6] * 4
    assert run_id(five) != run_id(six)
    # the same numbers reached per probe are the same run
    per_probe = [f"scale.vgg.probe_every.{p}=5" for p in PROBES]
    assert run_id(resolve(make_cfg([*SMOKE_VGG, *per_probe]))) == run_id(five)
