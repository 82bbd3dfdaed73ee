"""What the speed benchmarks share (`bnopt.bench` for the train loop, `bnopt.probes.bench` for the probes):
a run's config, model, optimiser and task built as a run builds them, and a device sync for timing.

Both benchmark modules import from here, so the imports go one way: bench -> probes.bench -> bench_setup.
"""

from __future__ import annotations

import torch

from .config import CONFIG_DIR, pick_device, resolve
from .models import build_model, set_noise_generator
from .tasks import build_task


def compose(overrides: list[str]):
    """The resolved `train` config for these overrides, as the CLI composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return resolve(hydra_compose("train", overrides=overrides))


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
