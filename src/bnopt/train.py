"""Train one of the paper's networks: `bnopt-train [hydra overrides]` or `python -m bnopt.train ...`.

    bnopt-train model=vgg16_bn optim.lr=0.5 scale=small
    bnopt-train model=dln_bn
    bnopt-train -m model=vgg16,vgg16_bn optim.lr=0.1,0.5

One run = resolve and validate the config, load the data onto the device, then a plain loop:
batch -> forward -> loss -> backward -> probes (read-only) -> SGD step. Records go to
results/runs/<run_id>/ (see records.py); a rerun of the same command skips a finished run and resumes a
killed one from its checkpoint, with bit-identical records on CPU.
"""

from __future__ import annotations

import math
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from tqdm.auto import tqdm

from .config import CONFIG_DIR, ConfigError, pick_device, resolve, run_id, validate
from .data import DataError
from .models import build_model, set_noise_generator
from .models.norms import norms_in_fp32
from .probes import ProbeContext, build_probes, listen
from .records import (
    HISTOGRAM_FILE,
    METRICS_FILE,
    PROBES_FILE,
    RunFolder,
    RunLocked,
    WandbMirror,
    check_writable,
    environment,
)
from .tasks import build_task

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
    cfg = prepare(cfg)
    folder = RunFolder(Path(cfg.paths.results), run_id(cfg))
    # before loading data: a sweep over finished runs costs seconds; a finished run with damaged records
    # is rebuilt from its final checkpoint when that holds them, not retrained
    if folder.is_finished() or folder.rebuild_from_checkpoint():
        st = folder.status()
        print(f"run {folder.run_id} is already {st['status']}: results in {folder.path}")
        return RunResult(folder.run_id, folder.path, st["status"], st.get("steps_done", 0), st.get("summary", {}))
    device, task = load_task(cfg)
    auto = cfg.scale.get("requested") == "auto"
    scale_note = cfg.scale.name + (" (auto: CUDA -> paper, CPU -> small)" if auto else "")
    width = f" width={cfg.model.width:g}" if cfg.model.family == "vgg" else ""  # a DLN has no width
    print(
        f"bnopt: {cfg.model.name} lr={cfg.optim.lr:g} scale={scale_note} steps={cfg.scale.steps} "
        f"batch={cfg.scale.batch_size}{width} device={device} data={task.source}"
    )

    folder.open(cfg)
    try:
        return _train_in_folder(cfg, device, task, folder, progress)
    finally:
        folder.close()


def _train_in_folder(cfg, device, task, folder: RunFolder, progress: bool) -> RunResult:
    # --- model, optimiser, generators -----------------------------------------------------------
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
    amp = autocast_dtype(cfg)

    # --- resume ---------------------------------------------------------------------------------
    start, rows, probe_rows, elapsed = 0, [], [], 0.0
    ckpt = folder.load_checkpoint()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        noise_gen.set_state(ckpt["noise_gen"])
        torch.set_rng_state(ckpt["torch_rng"])
        for p, state in zip(probes, ckpt.get("probes", []), strict=False):
            p.load_state_dict(state)
        start, rows, probe_rows, elapsed = ckpt["step"], ckpt["rows"], ckpt["probe_rows"], ckpt["elapsed"]
        print(f"resuming {folder.run_id} from step {start}")
    resumed = ckpt is not None
    # counted in status.json, not the checkpoint: two resumes from the same checkpoint are two resumes
    resumes = (folder.status() or {}).get("resumes", 0) + 1 if resumed else 0
    folder.write_status(
        "running",
        steps=cfg.scale.steps,
        steps_done=start,
        resumes=resumes,
        environment=environment(),
        started=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    wb = WandbMirror(cfg, folder, resume=resumed)
    if resumed:
        wb.catch_up(wandb_history(rows, probe_rows, probes))

    def checkpoint(step: int) -> None:
        folder.write_frame(METRICS_FILE, rows)
        if probe_rows:
            folder.write_frame(PROBES_FILE, probe_rows)
        for p in probes:
            folder.write_arrays(HISTOGRAM_FILE, p.arrays())
        folder.save_checkpoint(
            {
                "step": step,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "noise_gen": noise_gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "rows": rows,
                "probe_rows": probe_rows,
                "elapsed": elapsed + (time.perf_counter() - t0),
                "probes": [p.state_dict() for p in probes],
            }
        )

    def evaluate(step: int) -> dict:
        res = task.evaluate(model)
        rows.append({"step": step, "kind": "eval", **res})
        wb.log(eval_payload(rows[-1]), step=step)
        return res

    # --- loop -----------------------------------------------------------------------------------
    steps, eval_every, ckpt_every = cfg.scale.steps, cfg.scale.eval_every, cfg.scale.ckpt_every
    lr = cfg.optim.lr
    # per-step values still on the device, with the step's probe payload for W&B: W&B drops rows logged at a
    # step below one already logged, so probe scalars travel with their step's training row
    pending: list[tuple[int, torch.Tensor, dict, dict]] = []
    status, t0, train_time, probe_time, images = "done", time.perf_counter(), 0.0, 0.0, 0
    last_eval = next((r for r in reversed(rows) if r["kind"] == "eval"), {})
    if start == 0:
        last_eval = evaluate(0)
    bar = tqdm(
        total=steps,
        initial=start,
        disable=not progress,
        desc=folder.run_id,
        mininterval=1.0,
        dynamic_ncols=True,
        unit="step",
    )
    model.train()
    step = start
    try:
        while step < steps:
            t_step = time.perf_counter()
            due = [p for p in probes if p.due(step)]
            # probes that read activations read this forward's, unless it ran in bf16 (probes are fp32:
            # they then run their own forward)
            with listen(due if amp is None else [], model) as heard:
                x, y, loss, extra = forward_backward(model, task, opt, step, amp_dtype=amp)
            t_probe, probe_payload = time.perf_counter(), {}
            for probe in due:
                new_rows = probe(ProbeContext(step, model, x, y, loss, opt, task, heard))
                probe_rows.extend(new_rows)
                probe_payload.update(probe.wandb(new_rows))
            probe_time += time.perf_counter() - t_probe
            opt.step()
            pending.append((step, loss.detach(), extra, probe_payload))
            step += 1
            images += len(y)
            train_time += time.perf_counter() - t_step  # includes probes; throughput excludes them
            bar.update(1)

            if step % LOG_EVERY and step % eval_every and step % ckpt_every and step != steps:
                continue
            diverged_at = _flush(pending, rows, wb, lr)
            pending.clear()
            if diverged_at is not None:
                status = "diverged"
                step = diverged_at
                break
            last_row = rows[-1]
            post = {"loss": f"{last_row['loss']:.4g}", "img/s": f"{images / max(train_time - probe_time, 1e-9):.0f}"}
            if "acc" in last_row:
                post["acc"] = f"{last_row['acc']:.3f}"
            bar.set_postfix(post, refresh=False)
            if step % eval_every == 0 or step == steps:
                last_eval = evaluate(step)
            if step % ckpt_every == 0 or step == steps:
                checkpoint(step)
                folder.write_status("running", steps_done=step)
    except BaseException as e:
        bar.close()
        if not isinstance(e, KeyboardInterrupt):
            folder.write_status("failed", steps_done=step, error=f"{type(e).__name__}: {e}")
        wb.finish(exit_code=1)
        raise
    bar.close()

    # --- finish ---------------------------------------------------------------------------------
    elapsed += time.perf_counter() - t0
    train_rows = [r for r in rows if r["kind"] == "train"]
    summary = {
        "steps_done": step,
        "final_loss": train_rows[-1]["loss"] if train_rows else math.nan,
        **{k: v for k, v in last_eval.items() if k not in ("step", "kind")},
        "images_per_s": images / (train_time - probe_time) if train_time > probe_time else None,
        "probe_time_fraction": probe_time / train_time if train_time else 0.0,
    }
    if "acc" in (train_rows[-1] if train_rows else {}):
        summary["final_batch_acc"] = train_rows[-1]["acc"]
    if status == "diverged":
        checkpoint(step)  # records up to divergence; the run is final
    folder.write_status(
        status,
        steps_done=step,
        elapsed_s=round(elapsed, 2),
        summary=summary,
        finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    wb.summary({"status": status, **summary})
    wb.finish()
    _print_summary(cfg, folder, status, summary, elapsed, wb)
    return RunResult(folder.run_id, folder.path, status, step, summary)


def forward_backward(model, task, opt, step: int, amp_dtype: torch.dtype | None = None):
    """The step's batch, forward, loss, backward: after it every .grad holds the step's training gradient.

    amp_dtype (train.precision=bf16: torch.bfloat16): the forward runs under torch.autocast of that dtype,
    with the norm layers in fp32 (`norms_in_fp32`); the loss is computed in fp32 from the fp32-cast output,
    outside autocast, so the returned loss, .grad and everything after the step (probes, evaluation) is
    fp32. No host synchronisation here: scalars reach the host at logging cadence (`_flush`)."""
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


def _flush(pending, rows, wb, lr) -> int | None:
    """Move per-step device values to the records (one host sync). Returns the step at which the loss
    first went non-finite, if it did: that step is recorded and the run ends as diverged."""
    if not pending:
        return None
    losses = torch.stack([p[1] for p in pending]).float().cpu().tolist()
    extras = {k: torch.stack([p[2][k] for p in pending]).float().cpu().tolist() for k in pending[0][2]}
    for i, (step, _, _, probe_payload) in enumerate(pending):
        row = {"step": step, "kind": "train", "loss": losses[i], "lr": lr, **{k: v[i] for k, v in extras.items()}}
        rows.append(row)
        wb.log(train_payload(row, probe_payload), step=step)
        if not math.isfinite(losses[i]):
            return step + 1
    return None


def train_payload(row: dict, probe_payload: dict) -> dict:
    """What W&B gets for a training row: its values under train/, with its step's probe scalars (W&B drops
    a row logged at a step below one already logged, so they travel together)."""
    return {**{f"train/{k}": v for k, v in row.items() if k not in ("step", "kind")}, **probe_payload}


def eval_payload(row: dict) -> dict:
    return {f"eval/{k}": v for k, v in row.items() if k not in ("step", "kind")}


def wandb_history(rows: list[dict], probe_rows: list[dict], probes) -> list[tuple[int, dict]]:
    """Every (step, payload) training logged to W&B for these records, in the order it logged them:
    what a resumed run sends W&B where W&B lacks it. Probe payloads are rebuilt from the probe rows
    (an activations histogram is not: only the probe's own step has its histogram)."""
    by_probe = {p.name: p for p in probes}
    at_step: dict[tuple[int, str], list[dict]] = {}
    for r in probe_rows:
        at_step.setdefault((r["step"], r["probe"]), []).append(r)
    probe_payloads: dict[int, dict] = {}
    for (step, name), group in at_step.items():
        if name in by_probe:
            probe_payloads.setdefault(step, {}).update(by_probe[name].wandb(group))
    return [
        (r["step"], train_payload(r, probe_payloads.get(r["step"], {})) if r["kind"] == "train" else eval_payload(r))
        for r in rows
    ]


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


# --------------------------------------------------------------------------------------------- CLI

# Our config groups; hydra/* groups also come from plugins (submitit_local, ...), so Hydra checks those.
GROUPS = ("model", "data", "optim", "probes", "logger", "scale", "paths", "experiment")


def parse_cli(argv: list[str]):
    """bnopt-train's command line read by Hydra's own parser (overrides, -m, --config-dir DIR / -cd DIR /
    --config-dir=DIR, --help, ...); a bad flag is one line and exit 2."""
    from hydra._internal.utils import get_args_parser

    def error(message: str) -> None:  # argparse would print its usage block
        if message.startswith("unrecognized arguments"):  # Hydra's parser takes the overrides as one list
            message += " (flags such as -m go before the overrides: bnopt-train -m model=vgg16,vgg16_bn)"
        fail(message)

    parser = get_args_parser()
    parser.error = error
    return parser.parse_args(argv)


def precheck(argv: list[str]) -> None:
    """Everything a command gets wrong, as one line and exit 2 before anything is trained or written:
    the prechecks read configs as Hydra will, --config-dir's folder included."""
    args = parse_cli(argv)
    if args.help or args.hydra_help or args.shell_completion:
        return
    from . import experiments

    if args.config_dir is not None and not Path(args.config_dir).is_dir():
        fail(f"--config-dir {args.config_dir} is not a folder")
    with experiments.config_dir(args.config_dir):
        precheck_overrides(args.overrides)
        precheck_hydra(args.overrides)
        precheck_sweep(args.overrides, multirun=args.multirun)


def precheck_overrides(overrides: list[str]) -> None:
    """Unknown config-group choices (model=foo, model=_vgg) and launchers this machine cannot run, as one
    line and exit 2, before Hydra prints a traceback."""
    from . import experiments

    for arg in overrides:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.lstrip("+~").split("=", 1)
        if key == "hydra/launcher" and value in ("slurm", "submitit_slurm") and shutil.which("sbatch") is None:
            fail(f"hydra/launcher={value} needs SLURM, but `sbatch` is not on this machine's PATH")
        if key not in GROUPS or value in ("null", "") or "(" in value:
            continue
        options = experiments.group_options(key)
        for choice in value.split(","):
            if choice not in options:
                fail(f"unknown {key} {choice!r}; choose one of {', '.join(options)}")


def precheck_hydra(overrides: list[str]) -> None:
    """Hydra's own settings (hydra/launcher=foo, hydra.launcher.n_jobs=abc): composed once, as Hydra
    will, so that a bad one is one line here and not Hydra's error block at launch."""
    import yaml
    from hydra.errors import HydraException

    from . import experiments

    settings = [o for o in overrides if o.lstrip("+~").startswith("hydra")]
    if not settings:
        return
    try:
        experiments.compose_run(settings)
    except HydraException as e:
        fail(hydra_error_line(e))
    except yaml.YAMLError as e:
        fail(experiments.yaml_error_line(e))


def precheck_sweep(overrides: list[str], multirun: bool | None = None) -> None:
    """Resolve and validate every run of a sweep (-m, or an experiment, whose configs are sweeps) before
    the first one trains: a bad value in the fifth run is one line and exit 2, not a half-done sweep. Every
    run's keys are checked (an unknown key, a +key outside +extra.*), and a single run is composed too."""
    import yaml
    from hydra.errors import HydraException

    from . import experiments

    if multirun is None:  # a command line's words (flags among them), as older callers pass them
        multirun = bool({"-m", "--multirun"} & set(overrides))
    # the run's own overrides: Hydra's (launcher, sweep dir) do not change what a job trains
    overrides = [a for a in overrides if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]
    experiment = next((a.split("=", 1)[1] for a in overrides if a.split("=", 1)[0] == "experiment"), "null")
    try:
        if experiment != "null":
            rest = [o for o in overrides if o.split("=", 1)[0] != "experiment"]
            jobs = experiments.get(experiment).sweep(rest)
        else:
            jobs = experiments.expand(overrides) if multirun else [overrides]
        for job in jobs:
            experiments.check_keys(job)
            cfg = experiments.compose_run(job)
            if multirun or experiment != "null":  # one run: train() validates the values (the same line)
                validate(resolve(cfg))
    except ConfigError as e:
        fail(str(e))
    except HydraException as e:
        fail(hydra_error_line(e, known_keys(overrides)))
    except yaml.YAMLError as e:
        fail(experiments.yaml_error_line(e))


def known_keys(overrides: list[str]) -> set[str]:
    """The keys of the config the overrides' (first) group choices compose, for the nearest-key hint of an
    error Hydra raised; none if those do not compose either."""
    from . import experiments

    try:
        first = experiments.expand(overrides)[0]
        return experiments.config_keys(experiments.compose_run([o for o in first if experiments.is_group_override(o)]))
    except Exception:  # the hint is optional: Hydra's own error is the one reported
        return set()


def hydra_error_line(e: Exception, known: set[str] = frozenset()) -> str:
    """Hydra's composition error as one line: an unknown key with the nearest known one, an unknown group
    option with the options, a value Hydra's schema refuses with the reason."""
    from . import experiments

    lines = str(e).splitlines()
    missing = re.match(r"In '[^']+': Could not find '(.+)/([^/']+)'", lines[0])
    if missing and getattr(e, "options", None):
        options = [o for o in e.options if not o.startswith("_")]
        return f"unknown {missing[1]} {missing[2]!r}; choose one of {', '.join(options)}"
    unknown = re.match(r"Could not override '([^']+)'", lines[0])
    if unknown:
        key = unknown[1]
        if key.startswith("hydra."):
            return f"no config key {key} (Hydra's settings: bnopt-train --cfg hydra, with the same hydra/... choices)"
        value = next((ln.rsplit("=", 1)[1] for ln in lines[1:] if ln.startswith("To append to your config use")), "...")
        return experiments.unknown_key_line(key, value, set(known))
    merging = re.match(r"Error merging override (.+)", lines[0])
    if merging and e.__cause__ is not None:
        return f"{merging[1]}: {str(e.__cause__).splitlines()[0]}"
    return lines[0]


def fail(message: str) -> None:
    print(f"bnopt: error: {message}", file=sys.stderr)
    sys.exit(2)


class JobLogsNotice(Callback):
    """Hydra callback (configs/hydra/default.yaml): a sweep whose launcher runs each job in its own
    process (submitit: local_parallel, slurm) shows nothing of the jobs on this terminal, so say at the start
    where their progress bars and summaries go."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        target = str(config.hydra.launcher.get("_target_", ""))
        if "submitit" in target.lower():
            folder = config.hydra.launcher.get("submitit_folder", f"{config.hydra.sweep.dir}/.submitit")
            print(
                f"bnopt: each job runs in its own process ({target.rsplit('.', 1)[-1]}); its progress and summary "
                f"go to {folder}/<job id>/<job id>_0_log.out (errors: _log.err), not to this terminal",
                flush=True,
            )


EXIT_LOCKED = 3  # some run was not trained because another process holds it: scripts can tell
# Runs refused in this process. A SystemExit inside hydra_main would stop a sweep under the basic
# launcher, so refusals are collected and main() exits non-zero after the sweep. (Launchers that run jobs
# in other processes, submitit, keep their own list: there the refusal is the job's stderr line.)
REFUSED: list[str] = []


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    try:
        train(cfg, progress=True)
    except BadInput as e:
        fail(str(e))
    except RunLocked as e:  # not this run's error: say so, let a sweep go on, exit EXIT_LOCKED at the end
        print(f"bnopt: skipped run {e.run_id}: another process is training it ({e.path})", file=sys.stderr)
        REFUSED.append(e.run_id)


def main() -> None:
    precheck(sys.argv[1:])
    hydra_main()
    if REFUSED:
        sys.exit(EXIT_LOCKED)


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: launchers that pickle the task function
    # (submitit) then pickle it by reference instead of by value with all of this module's globals.
    from bnopt.train import main as module_main

    module_main()
