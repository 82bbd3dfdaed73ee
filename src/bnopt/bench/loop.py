"""The train loop's speed: cases (the loop's step, a bare step, a common-practice DataLoader step) timed
interleaved in one process, each case's best repeat kept (machine noise only ever adds time)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from ..config import compose
from ..data import DataError, load_cifar10
from ..train import forward_backward
from .build import setup, sync

SMALL = 0.25  # the VGG width of the small preset, which the CPU runs use
VGG_SMALL = ["vgg16", "vgg16_bn", "vgg16_noisy_bn", "vgg16_l1", "vgg16_l2", "vgg16_linf"]
VGG_PAPER = ["vgg16", "vgg16_bn"]  # width 1.0
DLN = ["dln", "dln_bn", "dln_l1", "dln_l2", "dln_linf"]


@dataclass
class Case:
    """One thing to time: `step(i)` does training step i; `images` per step; `best` seconds per step."""

    label: str
    model: str
    width: float
    step: Callable[[int], None]
    images: int
    device: torch.device
    best: float = float("inf")
    calls: int = 0
    evaluate: Callable[[], object] | None = None  # the task's eval pass (loop cases)
    eval_images: int = 0

    def row(self) -> dict:
        return {
            "case": self.label,
            "model": self.model,
            "width": self.width,
            "batch_size": self.images,
            "device": str(self.device),
            "ms_per_step": round(self.best * 1000, 3),
            "images_per_s": round(self.images / self.best, 1),
            "steps_timed": self.calls,
        }


def loop_case(model_name: str, width: float, label: str | None = None, amp: torch.dtype | None = None) -> Case:
    """The train loop's step: the task's batch of the step (index, uint8 -> normalised float on the device),
    forward (autocast to `amp` if given: train.precision=bf16), loss, backward, SGD step."""
    cfg, device, model, opt, task = setup(model_name, width)

    def step(i: int) -> None:
        forward_backward(model, task, opt, i, amp_dtype=amp)
        opt.step()

    images = len(task.test) + len(task.train_eval) if hasattr(task, "test") else task.n_train
    return Case(
        label or model_name,
        model_name,
        width,
        step,
        int(cfg.scale.batch_size),
        device,
        evaluate=lambda: task.evaluate(model),
        eval_images=images,
    )


def bare_case(model_name: str, width: float) -> Case:
    """The same model and optimiser on one ready-made normalised device batch: nothing but the maths."""
    cfg, device, model, opt, task = setup(model_name, width)
    x, y = (t.clone() for t in task.batch(0))

    def step(_i: int) -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return Case(f"{model_name} bare", model_name, width, step, len(y), device)


class _PILDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: a PIL image from the uint8 array, then transforms."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def dataloader_case(model_name: str, width: float, workers: int = 2) -> Case:
    """Common practice: ToTensor -> Normalize in DataLoader workers, NCHW model, batches copied in."""
    cfg, device, model, opt, task = setup(model_name, width, extra=["model.channels_last=false"])
    d = cfg.data
    images = task.train.x.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # N, H, W, C uint8 as CIFAR10 keeps
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(list(d.mean), list(d.std))])
    loader = torch.utils.data.DataLoader(
        _PILDataset(images, task.train.y.cpu().numpy(), tf),
        batch_size=int(cfg.scale.batch_size),
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        drop_last=True,
        pin_memory=device.type == "cuda",
    )
    batches = iter(loader)

    def step(_i: int) -> None:
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return Case(f"{model_name} dataloader", model_name, width, step, int(cfg.scale.batch_size), device)


def interleave(cases: list[Case], seconds: float, repeats: int = 5, warmup: int = 3) -> list[Case]:
    """Time the cases in turn, `repeats` rounds of ~seconds/repeats each; keep each case's best step time.
    Prints each case's row when the group is done."""
    steps = {}
    for c in cases:  # warm-up, and a step count that makes one round of this case ~ seconds / repeats
        for i in range(warmup):
            c.step(i)
        sync(c.device)
        t0 = time.perf_counter()
        c.step(warmup)
        sync(c.device)
        one = time.perf_counter() - t0
        steps[c.label] = max(1, min(200, int(seconds / repeats / max(one, 1e-6))))
    for r in range(repeats):
        for c in cases:
            n = steps[c.label]
            t0 = time.perf_counter()
            for i in range(n):
                c.step(warmup + 1 + r * n + i)
            sync(c.device)
            c.best = min(c.best, (time.perf_counter() - t0) / n)
            c.calls += n
    for c in cases:
        print(f"train  {c.label:26s} {c.best * 1000:9.2f} ms/step  {c.images / c.best:9.1f} samples/s", flush=True)
    return cases


def eval_ms_per_image(case: Case, repeats: int = 3) -> float:
    """Best time of the task's evaluation pass (eval mode, no grad, test + train-eval images) per image."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        case.evaluate()
        sync(case.device)
        best = min(best, time.perf_counter() - t0)
    return best * 1000 / case.eval_images


def startup_seconds() -> float:
    """Wall time from starting a run's process to its first step: interpreter, imports, Hydra's compose
    (`bnopt-train --cfg job`), plus loading the default data (the local CIFAR-10 when it is here)."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bnopt.train", "--cfg", "job", "logger=none"], capture_output=True, check=False
    )
    spawn = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        load_cifar10(compose(["logger=none"]).data)
    except (DataError, OSError):
        pass  # no data here: a run would stop before training anyway
    return spawn + time.perf_counter() - t0


def measure(seconds: float, quick: bool = False) -> dict:
    """All groups: {'train': rows, 'ratios': {...}}; quick = fewer cases, fewer rounds and no full-width VGG
    (tests: the numbers' shape, not their precision)."""
    rounds = {"repeats": 2, "warmup": 1} if quick else {}
    small = interleave(
        [
            bare_case("vgg16_bn", SMALL),
            loop_case("vgg16_bn", SMALL, "vgg16_bn"),
            dataloader_case("vgg16_bn", SMALL),
            *(loop_case(m, SMALL) for m in VGG_SMALL if m != "vgg16_bn"),
        ],
        seconds,
        **rounds,
    )
    by = {c.label: c for c in small}
    dln = interleave([loop_case(m, 1.0) for m in (DLN[:2] if quick else DLN)], seconds, **rounds)
    by.update({c.label: c for c in dln})
    rows = [c.row() for c in small + dln]
    if not quick:
        paper = [loop_case(m, 1.0, f"{m} width 1") for m in VGG_PAPER]
        if torch.cuda.is_available():  # the GPU path: full-width VGG16 at batch 128 in bf16 too
            paper += [loop_case(m, 1.0, f"{m} width 1 bf16", amp=torch.bfloat16) for m in VGG_PAPER]
        rows += [c.row() for c in interleave(paper, seconds)]
    bn = by["vgg16_bn"].best
    ratios = {
        "loop_over_bare": round(by["vgg16_bn bare"].best / bn, 3),
        "loop_over_dataloader": round(by["vgg16_bn dataloader"].best / bn, 3),
        "noisy_bn_over_bn": round(by["vgg16_noisy_bn"].best / bn, 3),
        "lp_over_bn": round(max(by[f"vgg16_{p}"].best for p in ("l1", "l2", "linf")) / bn, 3),
        "dln_bn_ms_per_step": round(by["dln_bn"].best * 1000, 3),
    }
    per_run = {
        "eval_ms_per_image": {
            "vgg": round(eval_ms_per_image(by["vgg16_bn"]), 5),
            "dln": round(eval_ms_per_image(by["dln_bn"]), 6),
        },
        "startup_s": round(startup_seconds(), 2),
    }
    return {"train": rows, "ratios": ratios, "per_run": per_run}
