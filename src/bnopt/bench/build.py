"""What the speed benchmarks share (`bench.loop` for the train loop, `bench.probe_costs` for the probes):
a run's config, model, optimiser and task built as a run builds them, and a device sync for timing.
"""

from __future__ import annotations

import torch

from ..config import compose, pick_device
from ..models import build_model, set_noise_generator
from ..tasks import build_task


def setup(model_name: str, width: float, batch_size: int | None = None, extra: list[str] = ()):
    """Model, optimiser and task as a run would build them (synthetic images: speed does not depend on pixels)."""
    overrides = [f"model={model_name}", "logger=none", *extra]
    if not model_name.startswith("dln"):
        overrides += [
            "data=synthetic",
            "data.n_train=2048",
            "data.n_test=256",
            "scale=small",
            f"model.width={width}",
            f"scale.batch_size={batch_size or 128}",
        ]
    cfg = compose(overrides)
    device = pick_device(cfg.device)
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    if cfg.model.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    set_noise_generator(model, torch.Generator(device=device).manual_seed(1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3 if cfg.model.family == "vgg" else 1e-7)
    return cfg, device, model, opt, build_task(cfg, device)


def sync(device) -> None:
    """Wait for the device's queued work, so that a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
