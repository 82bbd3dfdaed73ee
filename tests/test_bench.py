"""`make bench` writes the ratios the README quotes, and the reproduce plan's estimates follow from them."""

from __future__ import annotations

import json

import pytest

from bnopt import bench
from bnopt.config import resolve
from bnopt.estimates import Speeds, machine_key
from bnopt.records import environment

from .conftest import make_cfg

RATIOS = {
    "loop_over_bare",
    "loop_over_dataloader",
    "noisy_bn_over_bn",
    "lp_over_bn",
    "probe_overhead_paper",
    "dln_bn_ms_per_step",
}


@pytest.mark.e2e
def test_bench_writes_the_ratios_and_what_the_plan_reads(tmp_path):
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"machines": {"NVIDIA H200": fake_bench(cuda=True, gpu="NVIDIA H200")}}))
    bench.main(["--quick", "--seconds", "0.2", "--out", str(out)])
    machines = json.loads(out.read_text())["machines"]
    assert set(machines) == {"NVIDIA H200", machine_key(environment())}  # another machine's record is kept
    b = machines[machine_key(environment())]
    assert set(b["ratios"]) == RATIOS
    assert all(v > 0 for v in b["ratios"].values())
    assert b["environment"]["cpu_count"] == environment()["cpu_count"]
    cases = {r["case"] for r in b["train"]}
    assert {"vgg16_bn", "vgg16_bn bare", "vgg16_bn dataloader", "vgg16_noisy_bn", "dln_bn"} <= cases
    assert b["per_run"]["startup_s"] > 0 and b["per_run"]["eval_ms_per_image"]["vgg"] > 0
    # the small VGG is timed with B1's hessian and B10's rank probes too; the paper's overhead leaves them out
    small = next(r for r in b["probes"] if r["model"] == "vgg16_bn")
    assert {"landscape", "hessian", "rank"} <= set(small["probe_call_in_train_steps"])
    assert set(small["overhead"]["paper"]["every"]) == {"landscape", "ics", "activations", "gradnorms"}
    # the plan reads it: a small VGG run gets an estimate of the right order
    speeds = Speeds.load(out)
    cfg = resolve(make_cfg(["model=vgg16_bn", "scale=small", "probes=paper", "data=synthetic"]))
    step = next(r for r in b["train"] if r["case"] == "vgg16_bn")["ms_per_step"] / 1000
    assert 2000 * step < speeds.run_seconds(cfg) < 2000 * step * 1.5 + 60


def fake_bench(**env) -> dict:
    return {
        "environment": {**environment(), **env},
        "train": [
            {"case": "vgg16_bn", "model": "vgg16_bn", "width": 0.25, "batch_size": 128, "ms_per_step": 100.0},
            {"case": "vgg16", "model": "vgg16", "width": 0.25, "batch_size": 128, "ms_per_step": 90.0},
            {"case": "vgg16_bn bare", "model": "vgg16_bn", "width": 0.25, "batch_size": 128, "ms_per_step": 1.0},
            {"case": "dln_bn", "model": "dln_bn", "width": 1.0, "batch_size": 1000, "ms_per_step": 5.0},
        ],
        "probes": [
            {
                "model": "vgg16_bn",
                "width": 0.25,
                "probe_call_in_train_steps": {"landscape": 8.0, "ics": 1.0, "activations": 0.5, "gradnorms": 0.01},
            }
        ],
        "per_run": {"eval_ms_per_image": {"vgg": 0.2, "dln": 0.0}, "startup_s": 5.0},
    }


def test_run_estimate_is_steps_times_step_plus_probes_eval_and_startup(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(fake_bench()))
    speeds = Speeds.load(path)
    cfg = resolve(make_cfg(["model=vgg16_bn", "scale=small", "probes=paper", "data.train_eval_size=1000"]))
    share = 8.0 / 100 + 1.0 / 100 + 0.5 / 100 + 0.01 / 10  # probes=paper at the small cadence
    evals = 2000 // 250 + 1
    want = 5.0 + 2000 * 0.1 * (1 + share) + evals * (10_000 + 1000) * 0.2 / 1000
    assert speeds.run_seconds(cfg) == pytest.approx(want)
    assert speeds.run_seconds(cfg, steps_done=1000) == pytest.approx(5.0 + (want - 5.0) / 2)
    # conv cost grows with width^2; a model the bench did not time has no estimate
    wide = resolve(make_cfg(["model=vgg16_bn", "scale=small", "model.width=0.5"]))
    assert speeds.step_seconds(wide) == pytest.approx(0.1 * 4)
    assert speeds.step_seconds(resolve(make_cfg(["model=vgg16_l2", "scale=small"]))) is None


def test_a_bench_from_another_kind_of_machine_gives_no_estimate(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(fake_bench(cpu_count=64)))
    assert Speeds.load(path) is None
    assert Speeds.load(tmp_path / "missing.json") is None


def test_each_kind_of_machine_reads_its_own_record(tmp_path):
    path = tmp_path / "bench.json"
    gpu = fake_bench(cuda=True, gpu="NVIDIA H200")
    gpu["train"][0]["ms_per_step"] = 4.0
    here = fake_bench()
    path.write_text(json.dumps({"machines": {"NVIDIA H200": gpu, machine_key(environment()): here}}))
    cfg = resolve(make_cfg(["model=vgg16_bn", "scale=small", "data=synthetic"]))
    assert Speeds.load(path).step_seconds(cfg) == pytest.approx(0.1)  # this machine's 100 ms, not the GPU's 4
    path.write_text(json.dumps({"machines": {"NVIDIA H200": gpu}}))
    assert Speeds.load(path) is None
    assert machine_key(gpu["environment"]) == "NVIDIA H200"
    assert machine_key({"cuda": False, "cpu_count": 2}) == "cpu-2"


def test_another_width_scales_like_a_model_timed_at_both_widths(tmp_path):
    b = fake_bench()
    b["train"] += [
        {"case": "vgg16_bn width 1", "model": "vgg16_bn", "width": 1.0, "batch_size": 128, "ms_per_step": 200.0},
        {"case": "vgg16_noisy_bn", "model": "vgg16_noisy_bn", "width": 0.25, "batch_size": 128, "ms_per_step": 150.0},
    ]
    b["probes"][0]["ms_per_train_step"] = 100.0
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(b))
    speeds = Speeds.load(path)
    noisy = resolve(make_cfg(["model=vgg16_noisy_bn", "scale=paper", "probes=paper", "data=synthetic"]))
    # BN's step doubled from width 0.25 to 1 (launch-bound, as on a GPU): so does the noisy net's, not x16
    assert speeds.step_seconds(noisy) == pytest.approx(0.150 * 200 / 100)
    # a probe call costs the same number of the run's own steps (it is passes of the run's own model)
    share = 8.0 / 100 + 1.0 / 100 + 0.5 / 100 + 0.01 / 10
    assert speeds.probe_share(noisy) == pytest.approx(share)


def test_a_probe_timed_only_at_the_small_width_is_charged_at_every_width(tmp_path):
    """B1's hessian probe is timed on the small VGG only (one call at full width is minutes on a CPU): a run
    with it gets that cost, in its own steps, at its own cadence; a probe no row timed adds nothing."""
    b = fake_bench()
    b["probes"][0] |= {"ms_per_train_step": 100.0}
    b["probes"][0]["probe_call_in_train_steps"] |= {"hessian": 400.0}
    b["probes"].append(
        {
            "model": "vgg16_bn",
            "width": 1.0,
            "ms_per_train_step": 400.0,
            "probe_call_in_train_steps": {"landscape": 2.0, "ics": 1.0, "activations": 1.0, "gradnorms": 0.0},
        }
    )
    b["train"].append(
        {"case": "vgg16_bn width 1", "model": "vgg16_bn", "width": 1.0, "batch_size": 128, "ms_per_step": 400.0}
    )
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(b))
    speeds = Speeds.load(path)
    small = resolve(make_cfg(["model=vgg16_bn", "scale=small", "experiment=beyond_hessian"]))
    assert speeds.probe_share(small) == pytest.approx(400.0 / 250)  # every evaluation: 250 steps
    wide = resolve(make_cfg(["model=vgg16_bn", "scale=small", "experiment=beyond_hessian", "model.width=1.0"]))
    assert speeds.probe_share(wide) == pytest.approx(400.0 / 250)  # 400 steps of the wide net: 160 s
    paper = resolve(make_cfg(["model=vgg16_bn", "scale=small", "probes=paper", "model.width=1.0"]))
    assert speeds.probe_share(paper) == pytest.approx(2.0 / 100 + 1.0 / 100 + 1.0 / 100)  # its own row


def test_a_smoke_run_is_charged_its_steps_probes_evaluations_and_startup(tmp_path):
    """Issue 22: the smoke plan said 2 min and took 5.9. A smoke VGG step (width 0.0625, batch 32) was charged
    1/64 of the small one's (width^2 * batch), where the bench shows how the step really grows with its work;
    each probe call costs the bench's measured number of the run's own steps, at the smoke cadence (every 5
    steps, gradnorms every step): the paper's probes are two thirds of the loop, as the runs measured."""
    b = fake_bench()
    # a CPU-like machine: 16x the work (width 0.25 -> 1) took 10x the time: 40 ms + 7.5 ms per unit of work
    # (width^2 * batch: 8 units at width 0.25 and batch 128, 128 at width 1, 0.125 at smoke)
    b["train"].append(
        {"case": "vgg16_bn width 1", "model": "vgg16_bn", "width": 1.0, "batch_size": 128, "ms_per_step": 1000.0}
    )
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(b))
    speeds = Speeds.load(path)
    smoke = resolve(make_cfg(["model=vgg16_bn", "scale=smoke", "probes=paper"]))
    step = (40 + 7.5 * 0.125) / 1000  # 40.9 ms, not 100 ms / 64 = 1.56 ms
    assert speeds.step_seconds(smoke) == pytest.approx(step)
    share = (8.0 + 1.0 + 0.5) / 5 + 0.01 / 1
    assert speeds.probe_share(smoke) == pytest.approx(share)
    assert share / (1 + share) == pytest.approx(0.6564, abs=1e-4)  # of the loop: runs measured 57-74%
    evals = 30 // 10 + 1  # steps 0, 10, 20, 30, each on the 10,000 test and 5,000 train-eval images
    want = 5.0 + 30 * step * (1 + share) + evals * 15_000 * 0.2 / 1000
    assert speeds.run_seconds(smoke) == pytest.approx(want)
    assert speeds.run_seconds(smoke) == pytest.approx(20.5738, abs=1e-4)  # the golden value
    # a GPU-like machine: the step does not grow from width 0.25 to 1 (kernel launches): neither does it shrink
    b["train"][-1]["ms_per_step"] = 99.0
    path.write_text(json.dumps(b))
    assert Speeds.load(path).step_seconds(smoke) == pytest.approx(0.1)


def test_finished_twins_time_a_planned_run():
    """estimates.Measured: a run is timed by the median seconds per step of finished runs that differ only in
    LR or seed, trained on this kind of machine with this many threads; a diverged run, a run of another
    machine or thread count, and a run with other probes do not count."""
    from omegaconf import OmegaConf

    from bnopt.estimates import Measured

    def cfg(lr=0.1, seed=0, probe_every=100):
        return OmegaConf.create(
            {
                "model": {"name": "vgg16_bn", "width": 0.25},
                "scale": {"steps": 2000, "batch_size": 128, "eval_every": 200},
                "probes": {"landscape": {"every": probe_every, "seed": seed + 2}},  # follows the run's seed
                "optim": {"lr": lr},
                "seed": seed,
            }
        )

    here = environment()
    other_threads = here | {"cpu_threads": here["cpu_threads"] + 1}
    other_machine = here | {"cuda": True, "gpu": "Some GPU"}

    def status(elapsed, env=here, state="done", steps=2000):
        return {"status": state, "steps_done": steps, "elapsed_s": elapsed, "environment": env}

    measured = Measured.of(
        [
            (cfg(0.1, 0), status(400.0)),
            (cfg(0.5, 1), status(500.0)),
            (cfg(0.1, 2), status(900.0)),
            (cfg(0.1, 3), status(10.0, state="diverged", steps=20)),
            (cfg(0.1, 4), status(50.0, env=other_threads)),
            (cfg(0.1, 5), status(60.0, env=other_machine)),
            (cfg(0.1, 6, probe_every=10), status(3000.0)),
        ]
    )
    assert measured.run_seconds(cfg(0.2, 9)) == pytest.approx(500.0)  # the median of 400, 500, 900
    assert measured.run_seconds(cfg(0.2, 9), steps_done=1500) == pytest.approx(125.0)
    assert measured.run_seconds(cfg(0.2, 9, probe_every=10)) == pytest.approx(3000.0)
    assert measured.run_seconds(cfg(0.2, 9, probe_every=50)) is None  # no twin: the bench's estimate instead
