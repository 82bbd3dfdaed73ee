"""The training loop of one run (the command line around it: bnopt.cli_train, `bnopt-train`).

One run = resolve and validate the config, load the data onto the device, then a plain loop, read top to
bottom in `train`: build -> resume -> loop (train_step; every LOG_EVERY steps flush, and evaluate / checkpoint
when due) -> finish. A step is batch -> forward -> loss -> backward -> probes (read-only) -> SGD step.
Records go to results/runs/<run_id>/ (see records.py); a rerun of the same command skips a finished run and
resumes a killed one from its checkpoint, with bit-identical records on CPU.
"""

from __future__ import annotations

import math
import runpy
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from .config import ConfigError, pick_device, resolve, run_id, validate
from .data import DataError
from .models import build_model, set_noise_generator
from .models.norms import norms_in_fp32
from .probes import ProbeContext, build_probes, listen
from .records import (
    HISTOGRAM_FILE,
    METRICS_FILE,
    PROBES_FILE,
    Checkpoint,
    check_writable,
    environment,
)
from .run_folder import RunFolder
from .tasks import build_task
from .wandb_mirror import WandbMirror, eval_payload, train_payload, wandb_history

LOG_EVERY = 25  # steps between host syncs / record flushes (one .item() per chunk, not per step)
# train.precision -> dtype of torch.autocast around the training step's forward (None: plain fp32)
AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16}


@dataclass
class RunResult:
    run_id: str
    path: Path
    status: str
    steps_done: int
    summary: dict = field(default_factory=dict)


class BadInput(Exception):
    """Raised for a bad config or data; `main` prints it as one line and exits with code 2."""


def prepare(cfg: DictConfig) -> DictConfig:
    """Everything about the config that can fail on bad input, before anything is read or written."""
    try:
        cfg = resolve(cfg)
        validate(cfg)
        check_writable(Path(cfg.paths.results))
    except (ConfigError, OSError) as e:
        raise BadInput(str(e)) from None
    return cfg


def load_task(cfg: DictConfig):
    """The device and the run's data on it; bad or missing data is BadInput."""
    device = pick_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
        set_tf32(bool(_train_options(cfg).get("tf32", True)))  # set both ways: no sweep job inherits it
    try:
        return device, build_task(cfg, device)
    except (DataError, OSError) as e:
        raise BadInput(str(e)) from None


def set_tf32(enabled: bool) -> None:
    """TF32 for float32 matmuls and cuDNN convolutions on CUDA (Ampere and later; `train.tf32`). CPU kernels
    do not read these flags. torch >= 2.9 has per-backend `fp32_precision` settings and refuses to mix them
    with the legacy `allow_tf32` flags, so the new ones are used where they exist."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
        mode = "tf32" if enabled else "ieee"
        matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
    else:
        matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def autocast_dtype(cfg: DictConfig) -> torch.dtype | None:
    """The autocast dtype of `train.precision`: None for fp32 (also for configs from before the key)."""
    return AMP_DTYPES[_train_options(cfg).get("precision", "fp32")]


def _train_options(cfg: DictConfig):
    return cfg.get("train") or {}


def train(cfg: DictConfig, progress: bool = True) -> RunResult:
    """Train the run `cfg` names, from step 0 or from its checkpoint; a finished run is only reported."""
    cfg = prepare(cfg)
    folder = RunFolder(Path(cfg.paths.results), run_id(cfg))
    # before loading data: a sweep over finished runs costs seconds; a finished run with damaged records
    # is rebuilt from its final checkpoint when that holds them, not retrained
    if folder.is_finished() or folder.rebuild_from_checkpoint():
        st = folder.status()
        print(f"run {folder.run_id} is already {st['status']}: results in {folder.path}")
        return RunResult(folder.run_id, folder.path, st["status"], st.get("steps_done", 0), st.get("summary", {}))
    device, task = load_task(cfg)
    print_start(cfg, device, task)
    folder.open(cfg)
    try:
        run = build(cfg, device, task, folder)
        state = resume(run)
        loop(run, state, progress)
        return finish(run, state)
    finally:
        folder.close()


def print_start(cfg: DictConfig, device: torch.device, task) -> None:
    auto = cfg.scale.get("requested") == "auto"
    scale_note = cfg.scale.name + (" (auto: CUDA -> paper, CPU -> small)" if auto else "")
    width = f" width={cfg.model.width:g}" if cfg.model.family == "vgg" else ""  # a DLN has no width
    print(
        f"bnopt: {cfg.model.name} lr={cfg.optim.lr:g} scale={scale_note} steps={cfg.scale.steps} "
        f"batch={cfg.scale.batch_size}{width} device={device} data={task.source}"
    )


@dataclass
class Run:
    """What a run builds once and every step reads: its config, data and records, and the objects whose
    state a checkpoint saves."""

    cfg: DictConfig
    task: object  # tasks.build_task's: batch(step), loss(out, y), evaluate(model)
    folder: RunFolder
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    noise_gen: torch.Generator  # the noise of the noisy-BN model
    probes: list  # read-only measurements, each due at its own steps
    amp: torch.dtype | None  # the forward's autocast dtype (train.precision); None: fp32
    wb: WandbMirror | None = None  # opened by `resume`: a resumed run goes on in its W&B run


@dataclass
class Progress:
    """What changes as the run trains: the records so far (a checkpoint saves them) and this process's
    counters."""

    step: int = 0  # steps done
    rows: list[dict] = field(default_factory=list)  # metrics.parquet
    probe_rows: list[dict] = field(default_factory=list)  # probes.parquet
    elapsed: float = 0.0  # seconds trained by earlier processes (a resumed run)
    status: str = "done"  # "diverged" once a loss is not finite
    # per-step values still on the device, with the step's probe payload for W&B: W&B drops rows logged at a
    # step below one already logged, so probe scalars travel with their step's training row
    pending: list[tuple[int, torch.Tensor, dict, dict]] = field(default_factory=list)
    t0: float = 0.0  # time.perf_counter() when this process's loop started
    train_time: float = 0.0  # seconds in training steps, probes included
    probe_time: float = 0.0
    images: int = 0  # samples trained on by this process

    def seconds(self) -> float:
        """Seconds trained, earlier processes included."""
        return self.elapsed + (time.perf_counter() - self.t0)


def build(cfg: DictConfig, device: torch.device, task, folder: RunFolder) -> Run:
    """The model, optimiser, noise generator and probes as at step 0: seeded, so a config builds one run."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, getattr(task, "num_classes", 10)).to(device)
    if cfg.model.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay
    )
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    set_noise_generator(model, noise_gen)
    probes = build_probes(cfg, model, task)
    return Run(cfg, task, folder, model, opt, noise_gen, probes, autocast_dtype(cfg))


def resume(run: Run) -> Progress:
    """Where the run starts: step 0, or its checkpoint's step with the model, optimiser, generators, probes
    and records as they were. status.json then says running, and the W&B mirror opens (a resumed run's
    W&B run gets what it lacks of the records)."""
    ckpt = run.folder.load_checkpoint()
    state = Progress()
    if ckpt is not None:
        run.model.load_state_dict(ckpt.model)
        run.opt.load_state_dict(ckpt.optimizer)
        run.noise_gen.set_state(ckpt.noise_gen)
        torch.set_rng_state(ckpt.torch_rng)
        for probe, saved in zip(run.probes, ckpt.probes, strict=False):
            probe.load_state_dict(saved)
        state = Progress(step=ckpt.step, rows=ckpt.rows, probe_rows=ckpt.probe_rows, elapsed=ckpt.elapsed)
        print(f"resuming {run.folder.run_id} from step {state.step}")
    resumed = ckpt is not None
    # counted in status.json, not the checkpoint: two resumes from the same checkpoint are two resumes
    resumes = (run.folder.status() or {}).get("resumes", 0) + 1 if resumed else 0
    run.folder.write_status(
        "running",
        steps=run.cfg.scale.steps,
        steps_done=state.step,
        resumes=resumes,
        environment=environment(),
        started=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    run.wb = WandbMirror(run.cfg, run.folder, resume=resumed)
    if resumed:
        run.wb.catch_up(wandb_history(state.rows, state.probe_rows, run.probes))
    return state


def loop(run: Run, state: Progress, progress: bool) -> None:
    """Train to the last step (or a divergence): steps, with the records flushed every LOG_EVERY steps, the
    evaluation every eval_every and the checkpoint every ckpt_every (and all three at the last step)."""
    steps, eval_every, ckpt_every = run.cfg.scale.steps, run.cfg.scale.eval_every, run.cfg.scale.ckpt_every
    state.t0 = time.perf_counter()
    if state.step == 0:
        evaluate(run, state)
    bar = tqdm(
        total=steps,
        initial=state.step,
        disable=not progress,
        desc=run.folder.run_id,
        mininterval=1.0,
        dynamic_ncols=True,
        unit="step",
    )
    run.model.train()
    try:
        while state.step < steps:
            train_step(run, state)
            bar.update(1)
            last = state.step == steps
            if state.step % LOG_EVERY and state.step % eval_every and state.step % ckpt_every and not last:
                continue  # the step's values stay on the device: no host sync
            if flush(run, state):
                break  # the loss is not finite: the run ends here, diverged
            bar.set_postfix(progress_numbers(state), refresh=False)
            if state.step % eval_every == 0 or last:
                evaluate(run, state)
            if state.step % ckpt_every == 0 or last:
                checkpoint(run, state)
                run.folder.write_status("running", steps_done=state.step)
    except BaseException as e:
        bar.close()
        if not isinstance(e, KeyboardInterrupt):  # a kill leaves the run running: a rerun resumes it
            run.folder.write_status("failed", steps_done=state.step, error=f"{type(e).__name__}: {e}")
        run.wb.finish(exit_code=1)
        raise
    bar.close()


def train_step(run: Run, state: Progress) -> None:
    """One SGD step, with the probes due at it between backward and update (they read, never write). The
    loss stays on the device until `flush`."""
    t_step = time.perf_counter()
    due = [p for p in run.probes if p.due(state.step)]
    # probes that read activations read this forward's, unless it ran in bf16 (probes are fp32: they then run
    # their own forward)
    with listen(due if run.amp is None else [], run.model) as heard:
        x, y, loss, extra = forward_backward(run.model, run.task, run.opt, state.step, amp_dtype=run.amp)
    t_probe, probe_payload = time.perf_counter(), {}
    for probe in due:
        new_rows = probe(ProbeContext(state.step, run.model, x, y, loss, run.opt, run.task, heard))
        state.probe_rows.extend(new_rows)
        probe_payload.update(probe.wandb(new_rows))
    state.probe_time += time.perf_counter() - t_probe
    run.opt.step()
    state.pending.append((state.step, loss.detach(), extra, probe_payload))
    state.step += 1
    state.images += len(y)
    state.train_time += time.perf_counter() - t_step  # includes probes; throughput excludes them


def forward_backward(model, task, opt, step: int, amp_dtype: torch.dtype | None = None):
    """The step's batch, forward, loss, backward: after it every .grad holds the step's training gradient.

    amp_dtype (train.precision=bf16: torch.bfloat16): the forward runs under torch.autocast of that dtype,
    with the norm layers in fp32 (`norms_in_fp32`); the loss is computed in fp32 from the fp32-cast output,
    outside autocast, so the returned loss, .grad and everything after the step (probes, evaluation) is
    fp32. No host synchronisation here: scalars reach the host at logging cadence (`flush`)."""
    x, y = task.batch(step)
    if amp_dtype is None:
        out = model(x)
    else:
        norms_in_fp32(model)
        with torch.autocast(x.device.type, dtype=amp_dtype):
            out = model(x)
        out = out.float()
    loss, extra = task.loss(out, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    return x, y, loss, extra


def flush(run: Run, state: Progress) -> bool:
    """Move the pending per-step device values to the records and W&B (one host sync). Returns whether the
    loss went non-finite: that step is recorded, the run is diverged and ends there."""
    pending, state.pending = state.pending, []
    if not pending:
        return False
    lr = run.cfg.optim.lr
    losses = torch.stack([p[1] for p in pending]).float().cpu().tolist()
    extras = {k: torch.stack([p[2][k] for p in pending]).float().cpu().tolist() for k in pending[0][2]}
    for i, (step, _, _, probe_payload) in enumerate(pending):
        row = {"step": step, "kind": "train", "loss": losses[i], "lr": lr, **{k: v[i] for k, v in extras.items()}}
        state.rows.append(row)
        run.wb.log(train_payload(row, probe_payload), step=step)
        if not math.isfinite(losses[i]):
            state.status, state.step = "diverged", step + 1
            return True
    return False


def progress_numbers(state: Progress) -> dict:
    """The progress bar's numbers: the last training row's loss (and batch accuracy), the throughput."""
    last = state.rows[-1]
    numbers = {
        "loss": f"{last['loss']:.4g}",
        "img/s": f"{state.images / max(state.train_time - state.probe_time, 1e-9):.0f}",
    }
    if "acc" in last:
        numbers["acc"] = f"{last['acc']:.3f}"
    return numbers


def evaluate(run: Run, state: Progress) -> None:
    row = {"step": state.step, "kind": "eval", **run.task.evaluate(run.model)}
    state.rows.append(row)
    run.wb.log(eval_payload(row), step=state.step)


def checkpoint(run: Run, state: Progress) -> None:
    """The records so far, and the checkpoint a resume starts from."""
    run.folder.write_frame(METRICS_FILE, state.rows)
    if state.probe_rows:
        run.folder.write_frame(PROBES_FILE, state.probe_rows)
    for probe in run.probes:
        run.folder.write_arrays(HISTOGRAM_FILE, probe.arrays())
    ckpt = Checkpoint(
        step=state.step,
        model=run.model.state_dict(),
        optimizer=run.opt.state_dict(),
        noise_gen=run.noise_gen.get_state(),
        torch_rng=torch.get_rng_state(),
        rows=state.rows,
        probe_rows=state.probe_rows,
        elapsed=state.seconds(),
        probes=[probe.state_dict() for probe in run.probes],
    )
    run.folder.save_checkpoint(ckpt)


def finish(run: Run, state: Progress) -> RunResult:
    """The run's summary: in status.json (final), in W&B and on the terminal. A diverged run's records are
    saved up to its divergence."""
    elapsed, summary = state.seconds(), summarise(state)
    if state.status == "diverged":
        checkpoint(run, state)
    run.folder.write_status(
        state.status,
        steps_done=state.step,
        elapsed_s=round(elapsed, 2),
        summary=summary,
        finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    run.wb.summary({"status": state.status, **summary})
    run.wb.finish()
    _print_summary(run.cfg, run.folder, state.status, summary, elapsed, run.wb)
    return RunResult(run.folder.run_id, run.folder.path, state.status, state.step, summary)


def summarise(state: Progress) -> dict:
    """status.json's summary: the last training row's loss (and batch accuracy), the last evaluation, the
    throughput of this process's training steps (probes excluded) and the share of its time probes took."""
    last_train = next((r for r in reversed(state.rows) if r["kind"] == "train"), {})
    last_eval = next((r for r in reversed(state.rows) if r["kind"] == "eval"), {})
    summary = {
        "steps_done": state.step,
        "final_loss": last_train.get("loss", math.nan),
        **{k: v for k, v in last_eval.items() if k not in ("step", "kind")},
        "images_per_s": state.images / (state.train_time - state.probe_time)
        if state.train_time > state.probe_time
        else None,
        "probe_time_fraction": state.probe_time / state.train_time if state.train_time else 0.0,
    }
    if "acc" in last_train:
        summary["final_batch_acc"] = last_train["acc"]
    return summary


def _print_summary(cfg, folder: RunFolder, status: str, s: dict, elapsed: float, wb: WandbMirror) -> None:
    resumes = (folder.status() or {}).get("resumes", 0)
    resumed = f", resumed {resumes} time{'s' if resumes > 1 else ''} from a checkpoint" if resumes else ""
    width = f" (width {cfg.model.width:g})" if cfg.model.family == "vgg" else ""  # a DLN has no width
    lines = [
        "",
        f"=== {folder.run_id}: {status.upper()} after {s['steps_done']}/{cfg.scale.steps} steps "
        f"in {elapsed / 60:.1f} min{resumed} ===",
        f"  model {cfg.model.name}{width}, SGD lr {cfg.optim.lr:g}, "
        f"batch {cfg.scale.batch_size}, scale {cfg.scale.name}, seed {cfg.seed}",
        f"  final training loss {s['final_loss']:.4g}"
        + (f", batch acc {s['final_batch_acc']:.3f}" if "final_batch_acc" in s else ""),
    ]
    if "test_acc" in s:
        exact = f" (exact subset {s['test_acc_exact']:.4f})" if "test_acc_exact" in s else ""
        lines.append(f"  test acc {s['test_acc']:.4f}{exact}, train-subset acc {s['train_eval_acc']:.4f}")
    elif "train_eval_loss" in s:
        lines.append(f"  eval-mode training loss {s['train_eval_loss']:.4g}")
    if s.get("images_per_s"):
        lines.append(
            f"  throughput {s['images_per_s']:.0f} samples/s (training steps; probes took "
            f"{100 * s['probe_time_fraction']:.0f}% of the loop time)"
        )
    lines.append(f"  records: {folder.path}/{{{','.join(_record_names(folder))}}}")
    if wb.sync_dir is not None:
        lines.append(f"  W&B (offline): {wb.sync_dir}; upload it with: wandb sync {wb.sync_dir}")
    elif wb.url:
        lines.append(f"  W&B: {wb.url}")
    print("\n".join(lines))


def _record_names(folder: RunFolder) -> list[str]:
    """The run folder's entries (folders with a trailing /), without the lock and temp files."""
    entries = sorted(p for p in folder.path.iterdir() if not p.name.startswith("."))
    return [p.name + ("/" if p.is_dir() else "") for p in entries]


if __name__ == "__main__":
    # `python -m bnopt.train ...` is `bnopt-train ...` (reproduce.py and scripts call it so): run the command
    # line's module as the program. runpy, not an import: the loop does not depend on its command line.
    runpy.run_module("bnopt.cli_train", run_name="__main__", alter_sys=True)
