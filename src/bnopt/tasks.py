"""What a network is trained on and how it is scored: one class per model family.

A task owns its data on the device and answers three questions for the train loop:
`batch(step)` (inputs, targets of that step), `loss(output, targets)` (the training loss and metrics
tensors, kept on the device), and `evaluate(model)` (eval-mode numbers at an evaluation point).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import Batches, ImagePipeline, gaussian_linear, load_cifar10
from .losses import regression_loss


class ImageClassification:
    """CIFAR-10 (or its synthetic stand-in): cross-entropy averaged over the batch, accuracy."""

    kind = "classification"

    def __init__(self, cfg, device: torch.device):
        d = cfg.data
        train, test, self.source = load_cifar10(d)
        if d.get("test_size"):
            test = test.subset(torch.arange(min(int(d.test_size), len(test))))
        self.train, self.test = train.to(device), test.to(device)
        n_eval = min(int(d.train_eval_size), len(train))
        eval_idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n_eval]
        self.train_eval = train.subset(eval_idx).to(device)  # fixed subset, the same for every run
        self.batches = Batches(len(train), int(cfg.scale.batch_size), int(cfg.seed), device)
        channels_last = bool(cfg.model.get("channels_last", False))
        self.pipe = ImagePipeline(d.mean, d.std, device, channels_last, bool(d.augment), int(cfg.seed))
        self.num_classes = int(d.num_classes)

    @property
    def n_train(self) -> int:
        return len(self.train)

    def batch(self, step: int):
        idx = self.batches.indices(step)
        return self.pipe(self.train.x[idx], step), self.train.y[idx]

    def loss(self, out: torch.Tensor, y: torch.Tensor):
        loss = F.cross_entropy(out, y)
        return loss, {"acc": (out.detach().argmax(1) == y).float().mean()}

    @torch.no_grad()
    def evaluate(self, model, batch_size: int = 500) -> dict:
        was_training = model.training
        model.eval()
        try:
            res = {}
            for name, split in (("test", self.test), ("train_eval", self.train_eval)):
                correct = torch.zeros(len(split), dtype=torch.bool, device=split.y.device)
                loss_sum = torch.zeros((), device=split.y.device)
                for i in range(0, len(split), batch_size):
                    out = model(self.pipe(split.x[i : i + batch_size]))
                    yb = split.y[i : i + batch_size]
                    loss_sum += F.cross_entropy(out, yb, reduction="sum")
                    correct[i : i + batch_size] = out.argmax(1) == yb
                res[f"{name}_acc"] = correct.float().mean().item()
                res[f"{name}_loss"] = (loss_sum / len(split)).item()
                if split.exact is not None:
                    res[f"{name}_acc_exact"] = correct[split.exact].float().mean().item()
            return res
        finally:
            model.train(was_training)


class LinearRegression:
    """The DLN's problem: y = A x, squared error over the (full) batch, normalised by model.loss_norm.

    Training, evaluation and every probe (which call `loss`) use the same normalisation.
    """

    kind = "regression"

    def __init__(self, cfg, device: torch.device):
        d = cfg.data
        x, y, _ = gaussian_linear(int(d.n_samples), int(d.dim), int(d.data_seed))
        self.x, self.y = x.to(device), y.to(device)
        self.source = f"gaussian_linear ({d.n_samples} samples, dim {d.dim}, data_seed {d.data_seed})"
        self.batches = Batches(len(x), int(cfg.scale.batch_size), int(cfg.seed), device)
        self.full_batch = int(cfg.scale.batch_size) >= len(x)
        self.loss_norm = str(cfg.model.get("loss_norm", "sum"))

    @property
    def n_train(self) -> int:
        return len(self.x)

    def batch(self, step: int):
        if self.full_batch:  # plain gradient descent: no shuffling needed
            return self.x, self.y
        idx = self.batches.indices(step)
        return self.x[idx], self.y[idx]

    def loss(self, out: torch.Tensor, y: torch.Tensor):
        return regression_loss(out, y, self.loss_norm), {}

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        was_training = model.training
        model.eval()
        try:
            return {"train_eval_loss": regression_loss(model(self.x), self.y, self.loss_norm).item()}
        finally:
            model.train(was_training)


def build_task(cfg, device: torch.device):
    return LinearRegression(cfg, device) if cfg.model.family == "dln" else ImageClassification(cfg, device)
