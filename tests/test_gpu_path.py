"""The GPU path, tested for what a CPU can test: `train.precision=bf16` (autocast forward, fp32 norms, loss,
evaluation and probes), `train.tf32`, their place in the run id, and a training step free of host syncs.
The tests marked `cuda` run only where CUDA is available."""

from __future__ import annotations

import contextlib
import math

import pandas as pd
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import bnopt.train as train_mod
from bnopt.config import ConfigError, identity, resolve, run_id, validate
from bnopt.models import build_model, set_noise_generator
from bnopt.models.norms import LpNorm
from bnopt.records import METRICS_FILE, PROBES_FILE
from bnopt.train import forward_backward, load_task, set_tf32, train

from .conftest import make_cfg, run_cli, smoke_cfg

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, LpNorm)


def train_losses(result) -> pd.Series:
    m = pd.read_parquet(result.path / METRICS_FILE)
    return m[m.kind == "train"].loss.reset_index(drop=True)


def running_stats(result) -> dict:
    ckpt = torch.load(result.path / "checkpoint.pt", map_location="cpu", weights_only=False)
    return {k: v for k, v in ckpt["model"].items() if k.endswith(("running_mean", "running_var", "running_scale"))}


def step_setup(tmp_path, model: str, *extra: str, device: str = "cpu"):
    """A run's model, optimiser and task as `bnopt.train` builds them, without a run folder."""
    cfg = resolve(smoke_cfg(tmp_path, f"device={device}", *extra, model=model))
    validate(cfg)
    dev, task = load_task(cfg)
    torch.manual_seed(cfg.seed)
    net = build_model(cfg.model, getattr(task, "num_classes", 10)).to(dev)
    if cfg.model.get("channels_last"):
        net = net.to(memory_format=torch.channels_last)
    set_noise_generator(net, torch.Generator(device=dev).manual_seed(1))
    opt = torch.optim.SGD(net.parameters(), lr=cfg.optim.lr)
    return cfg, net, opt, task


def norm_io_dtypes(model: nn.Module) -> tuple[list, list]:
    """Forward hooks recording every norm layer's (input dtype, output dtype); the handles to remove."""
    seen: list = []
    handles = [
        m.register_forward_hook(lambda _m, i, o: seen.append((i[0].dtype, o.dtype)))
        for m in model.modules()
        if isinstance(m, NORMS)
    ]
    return seen, handles


# ------------------------------------------------------------------------------------------------ bf16


@pytest.mark.integration
def test_bf16_smoke_run_trains_with_fp32_statistics_and_its_own_run_id(tmp_path):
    fp32 = train(smoke_cfg(tmp_path), progress=False)
    bf16 = train(smoke_cfg(tmp_path, "train.precision=bf16"), progress=False)
    assert bf16.status == "done" and bf16.steps_done == 30
    assert bf16.run_id != fp32.run_id
    a, b = train_losses(fp32), train_losses(bf16)
    assert len(b) == 30 and all(math.isfinite(v) for v in b)
    assert b.iloc[-5:].mean() < 0.5 * b.iloc[:5].mean()  # learns as the fp32 smoke run does
    assert not a.equals(b)  # and is not the fp32 run under another name
    stats = running_stats(bf16)
    assert stats and {v.dtype for v in stats.values()} == {torch.float32}
    assert all(torch.isfinite(v).all() for v in stats.values())


@pytest.mark.parametrize("model", ["vgg16_bn", "vgg16_noisy_bn", "vgg16_l2", "vgg16_linf", "dln_bn", "dln_l1", "vgg16"])
def test_bf16_step_runs_norm_layers_and_loss_in_fp32(tmp_path, model):
    _, net, opt, task = step_setup(tmp_path, model)
    seen, handles = norm_io_dtypes(net)
    for step in range(2):
        x, y, loss, extra = forward_backward(net, task, opt, step, amp_dtype=torch.bfloat16)
        opt.step()
    for h in handles:
        h.remove()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(v.dtype == torch.float32 for v in extra.values())
    assert set(seen) <= {(torch.float32, torch.float32)}  # norms: fp32 in, fp32 statistics, fp32 out
    assert bool(seen) == (model != "vgg16")
    assert {b.dtype for b in net.buffers() if b.is_floating_point()} <= {torch.float32}
    assert {p.dtype for p in net.parameters()} == {p.grad.dtype for p in net.parameters()} == {torch.float32}
    # autocast ends with the step: the same model run outside it (probes, evaluation) computes in fp32
    assert net(x).dtype == torch.float32


@pytest.mark.integration
def test_bf16_casts_the_convolutions_and_nothing_outside_the_step(tmp_path, monkeypatch):
    """Probes (`probes.base.forward_loss`) and evaluation run after the step's autocast has ended: every
    convolution outside `forward_backward` computes in fp32, inside it in bf16."""
    inside, dtypes = [False], {True: set(), False: set()}
    original = train_mod.forward_backward

    def marked(*args, **kwargs):
        inside[0] = True
        try:
            return original(*args, **kwargs)
        finally:
            inside[0] = False

    monkeypatch.setattr(train_mod, "forward_backward", marked)

    def record(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            dtypes[inside[0]].add(output.dtype)

    handle = nn.modules.module.register_module_forward_hook(record)
    try:
        res = train(
            smoke_cfg(tmp_path, "train.precision=bf16", "probes=paper", "scale.steps=6", "probes.every=5"),
            progress=False,
        )
    finally:
        handle.remove()
    assert res.status == "done"
    probes = pd.read_parquet(res.path / PROBES_FILE)
    assert {"landscape", "ics"} <= set(probes.probe) and probes.value.notna().all()
    assert dtypes[True] == {torch.bfloat16}
    assert dtypes[False] == {torch.float32}


# ---------------------------------------------------------------------------------------- host syncs

SYNCS = ("item", "cpu", "tolist", "__bool__", "__float__", "__int__")


@contextlib.contextmanager
def counting_syncs():
    """Count calls of the tensor methods that move a value to the host: all of them, and those made inside
    the training step (`forward_backward` and the optimiser step)."""
    counts = {"all": 0, "step": 0}
    inside = [False]

    def wrap(original):
        def counted(self, *args, **kwargs):
            counts["all"] += 1
            counts["step"] += inside[0]
            return original(self, *args, **kwargs)

        return counted

    def set_inside(value):
        def hook(*args):
            inside[0] = value

        return hook

    step_fn = train_mod.forward_backward  # the loop's, whatever a test made of it

    def marked(*args, **kwargs):
        inside[0] = True
        try:
            return step_fn(*args, **kwargs)
        finally:
            inside[0] = False

    with pytest.MonkeyPatch.context() as mp:
        for name in SYNCS:
            mp.setattr(torch.Tensor, name, wrap(getattr(torch.Tensor, name)))
        mp.setattr(train_mod, "forward_backward", marked)
        pre = register_optimizer_step_pre_hook(set_inside(True))
        post = register_optimizer_step_post_hook(set_inside(False))
        try:
            yield counts
        finally:
            pre.remove()
            post.remove()


def syncs_of_run(tmp_path, monkeypatch, steps: int, log_every: int, precision: str = "fp32") -> dict:
    """Host syncs of a run of `steps` steps flushed every `log_every` steps; evaluation (at 0 and at the
    end) and the checkpoint (at the end) the same in every such run; no probes."""
    monkeypatch.setattr(train_mod, "LOG_EVERY", log_every)
    cfg = smoke_cfg(
        tmp_path / f"{steps}-{log_every}-{precision}",
        f"scale.steps={steps}",
        f"scale.eval_every={steps}",
        f"scale.ckpt_every={steps}",
        f"train.precision={precision}",
    )
    with counting_syncs() as counts:
        res = train(cfg, progress=False)
    assert res.status == "done" and res.steps_done == steps
    return counts


@pytest.mark.integration
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_host_syncs_come_with_flushes_not_with_steps(tmp_path, monkeypatch, precision):
    one_flush_short = syncs_of_run(tmp_path, monkeypatch, steps=8, log_every=8, precision=precision)
    one_flush_long = syncs_of_run(tmp_path, monkeypatch, steps=24, log_every=24, precision=precision)
    three_flushes = syncs_of_run(tmp_path, monkeypatch, steps=24, log_every=8, precision=precision)
    # nothing inside forward_backward + opt.step() reads a value back to the host
    assert one_flush_short["step"] == one_flush_long["step"] == three_flushes["step"] == 0
    # three times the steps, the same flushes: the same syncs; two more flushes: more syncs
    assert one_flush_long["all"] == one_flush_short["all"]
    per_flush = (three_flushes["all"] - one_flush_long["all"]) / 2
    assert per_flush == int(per_flush) and 0 < per_flush <= 8


@pytest.mark.integration
def test_a_host_sync_in_the_step_is_caught(tmp_path, monkeypatch):
    """The counter above sees a `loss.item()` added to the step (as a patched forward_backward here)."""
    original = train_mod.forward_backward

    def syncing(*args, **kwargs):
        out = original(*args, **kwargs)
        out[2].item()
        return out

    monkeypatch.setattr(train_mod, "forward_backward", syncing)
    counts = syncs_of_run(tmp_path, monkeypatch, steps=8, log_every=8)
    assert counts["step"] == 8


# ------------------------------------------------------------------------------------ config and id


def test_unknown_precision_is_one_clear_config_error():
    with pytest.raises(ConfigError, match=r"^unknown train.precision 'fp16'; choose one of fp32, bf16$"):
        validate(resolve(make_cfg(["train.precision=fp16"])))
    with pytest.raises(ConfigError, match="train.tf32 must be true or false"):
        validate(resolve(make_cfg(["train.tf32=sometimes"])))


@pytest.mark.e2e
def test_cli_rejects_fp16_with_one_line_and_exit_2(tmp_path):
    proc = run_cli("train.precision=fp16", "logger=none", f"paths.results={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bnopt: error: unknown train.precision 'fp16'; choose one of fp32, bf16"
    ]


def test_precision_and_tf32_compose_and_are_in_the_run_id():
    base = ["scale=smoke", "probes=paper"]
    fp32 = resolve(make_cfg(base))
    assert (fp32.train.precision, fp32.train.tf32) == ("fp32", True)
    bf16 = resolve(make_cfg([*base, "train.precision=bf16"]))
    validate(bf16)
    no_tf32 = resolve(make_cfg([*base, "train.tf32=false"]))
    assert identity(bf16)["train"] == {"precision": "bf16"} and identity(no_tf32)["train"] == {"tf32": False}
    assert len({run_id(fp32), run_id(bf16), run_id(no_tf32)}) == 3
    # at the defaults the keys stay out of the id: runs recorded before they existed keep their ids
    legacy = fp32.copy()
    del legacy["train"]
    assert "train" not in identity(fp32) and run_id(legacy) == run_id(fp32)


# ---------------------------------------------------------------------------------------------- TF32


@contextlib.contextmanager
def kept_backend_flags():
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    new_api = hasattr(matmul, "fp32_precision") and hasattr(cudnn, "conv")
    saved = (matmul.fp32_precision, cudnn.conv.fp32_precision) if new_api else (matmul.allow_tf32, cudnn.allow_tf32)
    benchmark = cudnn.benchmark
    try:
        yield
    finally:
        if new_api:
            matmul.fp32_precision, cudnn.conv.fp32_precision = saved
        else:
            matmul.allow_tf32, cudnn.allow_tf32 = saved
        cudnn.benchmark = benchmark


def tf32_state() -> tuple[bool, bool]:
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(cudnn, "conv"):
        return matmul.fp32_precision == "tf32", cudnn.conv.fp32_precision == "tf32"
    return matmul.allow_tf32, cudnn.allow_tf32


@pytest.mark.parametrize("tf32", [True, False])
def test_load_task_sets_tf32_on_cuda_only(monkeypatch, tf32):
    cfg = resolve(make_cfg(["data=synthetic", "scale=smoke", f"train.tf32={str(tf32).lower()}"]))
    with kept_backend_flags():
        set_tf32(not tf32)
        monkeypatch.setattr(train_mod, "build_task", lambda cfg, device: "task")
        monkeypatch.setattr(train_mod, "pick_device", lambda requested: torch.device("cpu"))
        load_task(cfg)
        assert tf32_state() == (not tf32, not tf32)  # CPU: untouched
        monkeypatch.setattr(train_mod, "pick_device", lambda requested: torch.device("cuda"))
        assert load_task(cfg) == (torch.device("cuda"), "task")
        assert tf32_state() == (tf32, tf32)


# ---------------------------------------------------------------------------------------- CUDA only


@cuda
@pytest.mark.parametrize("model", ["vgg16_bn", "vgg16_noisy_bn", "dln_bn"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_step_does_not_synchronise(tmp_path, model, precision):
    """torch's sync debug mode raises on any host synchronisation (.item(), a blocking copy, ...) inside
    the training step, once the step's batches are on the device (the epoch's permutation is copied once)."""
    cfg, net, opt, task = step_setup(tmp_path, model, f"train.precision={precision}", device="cuda")
    amp = train_mod.autocast_dtype(cfg)
    for step in range(3):  # warm-up: cuDNN benchmark, the epoch permutation, lazy CUDA init
        forward_backward(net, task, opt, step, amp_dtype=amp)
        opt.step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(3, 6):
            _, _, loss, _ = forward_backward(net, task, opt, step, amp_dtype=amp)
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(loss).item() and loss.dtype == torch.float32


@cuda
def test_cuda_bf16_keeps_batch_norm_in_fp32(tmp_path):
    cfg, net, opt, task = step_setup(tmp_path, "vgg16_bn", "train.precision=bf16", device="cuda")
    seen, handles = norm_io_dtypes(net)
    outs: list = []
    handles.append(net.register_forward_hook(lambda _m, _i, o: outs.append(o.dtype)))
    _, _, loss, _ = forward_backward(net, task, opt, 0, amp_dtype=torch.bfloat16)
    for h in handles:
        h.remove()
    assert seen and set(seen) == {(torch.float32, torch.float32)}
    assert outs == [torch.bfloat16]  # the network's output: autocast is on
    assert loss.dtype == torch.float32
    assert {b.dtype for b in net.buffers() if b.is_floating_point()} == {torch.float32}


@pytest.mark.integration
@cuda
def test_cuda_train_loop_runs_bf16_with_tf32(tmp_path):
    with kept_backend_flags():
        res = train(smoke_cfg(tmp_path, "device=cuda", "train.precision=bf16"), progress=False)
        assert tf32_state() == (True, True)
    assert res.status == "done" and all(math.isfinite(v) for v in train_losses(res))
    assert {v.dtype for v in running_stats(res).values()} == {torch.float32}
